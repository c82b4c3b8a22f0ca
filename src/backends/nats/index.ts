export { createNatsStore, type NatsStore } from './nats-store.js'
export type { NatsBucketOptions, NatsStoreOptions, NatsTlsOptions } from './options.js'
export { loadNatsConfig } from './config.js'
export type { ConfigLookup } from '../../internal/config.js'
export {
  createNatsSink,
  type AckedEvent,
  type NatsBusOptions,
  type NatsSink,
  type NatsSinkOptions,
  type SinkReceipt,
} from './bus-sink.js'
export {
  acknowledgeApplied,
  createNatsStreamSource,
  type AppliedSignals,
  type NatsSourceOptions,
  type NatsStreamSource,
} from './bus-source.js'
