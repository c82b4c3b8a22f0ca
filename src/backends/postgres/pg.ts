import type * as Pg from 'pg'
import { requirePeer } from '../../internal/optional-peer.js'

/**
 * The pg client's runtime exports, loaded when `rx-datasync/postgres` is imported: without pg
 * installed the import fails with a `MissingPeerError` saying `npm install pg`, not Node's bare
 * "Cannot find package". Every runtime use of pg in this backend comes through here; types are
 * imported from 'pg' directly (`import type`, free at run time).
 */
const pg = requirePeer('pg', 'rx-datasync/postgres') as typeof Pg

export const { Client, Pool, types } = pg

export type Client = Pg.Client
export type Pool = Pg.Pool
