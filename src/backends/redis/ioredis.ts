import type * as IoRedis from 'ioredis'
import { requirePeer } from '../../internal/optional-peer.js'

/**
 * ioredis's runtime exports, loaded when `rx-datasync/redis` is imported: without ioredis
 * installed the import fails with a `MissingPeerError` saying `npm install ioredis`. Types are
 * imported from 'ioredis' directly.
 */
export const { Cluster, Redis } = requirePeer('ioredis', 'rx-datasync/redis') as typeof IoRedis

export type Cluster = IoRedis.Cluster
export type Redis = IoRedis.Redis
