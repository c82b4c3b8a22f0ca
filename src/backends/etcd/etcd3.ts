import type * as Etcd3Module from 'etcd3'
import { requirePeer } from '../../internal/optional-peer.js'

/**
 * The etcd3 client's runtime exports, loaded when `rx-datasync/etcd` is imported: without etcd3
 * installed the import fails with a `MissingPeerError` saying `npm install etcd3`, not Node's bare
 * "Cannot find package". Every runtime use of etcd3 in this backend comes through here; types
 * are imported from 'etcd3' directly (they cost nothing at run time).
 */
const etcd3 = requirePeer('etcd3', 'rx-datasync/etcd') as typeof Etcd3Module

export const {
  Etcd3,
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  EtcdWatchStreamEnded,
  GRPCUnauthenticatedError,
  castGrpcError,
  castGrpcErrorMessage,
  isRecoverableError,
} = etcd3

export type Etcd3 = Etcd3Module.Etcd3
