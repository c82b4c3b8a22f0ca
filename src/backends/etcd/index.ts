export { createEtcdStore } from './etcd-store.js'
export type {
  EtcdPutOptions,
  EtcdStore,
  EtcdStoreOptions,
  EtcdTlsOptions,
  EtcdTxnOp,
} from './options.js'
export { loadEtcdConfig } from './config.js'
// EtcdConfigLookup: deprecated, kept for existing imports.
// eslint-disable-next-line @typescript-eslint/no-deprecated
export type { ConfigLookup, EtcdConfigLookup } from './config.js'
