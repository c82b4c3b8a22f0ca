import type ConsulModule from 'consul'
import { requirePeer } from '../../internal/optional-peer.js'

/**
 * The consul package's client class, loaded when `rx-datasync/consul` is imported: without the
 * package installed the import fails with a `MissingPeerError` saying `npm install consul`.
 */
export const Consul = requirePeer('consul', 'rx-datasync/consul') as typeof ConsulModule
