export { createConsulStore } from './consul-store.js'
export type { ConsulStoreOptions, ConsulTlsOptions } from './options.js'
export { loadConsulConfig } from './config.js'
export type { ConsulConfig } from './config.js'
