export { createEtcdStore } from './etcd-store.js'
export type {
  EtcdPutOptions,
  EtcdStore,
  EtcdStoreOptions,
  EtcdTlsOptions,
  EtcdTxnOp,
} from './etcd-store.js'
export { loadEtcdConfig, type EtcdConfigLookup } from './config.js'
