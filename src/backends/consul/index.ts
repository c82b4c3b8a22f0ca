export { createConsulStore, type ConsulStore } from './consul-store.js'
export type { ConsulStoreOptions, ConsulTlsOptions } from './options.js'
export { loadConsulConfig } from './config.js'
export type { ConfigLookup } from '../../internal/config.js'
