export { createNatsStore, type NatsStore } from './nats-store.js'
export type { NatsBucketOptions, NatsStoreOptions, NatsTlsOptions } from './options.js'
export { loadNatsConfig } from './config.js'
export type { ConfigLookup } from '../../internal/config.js'
