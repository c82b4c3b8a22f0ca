export { createFaultStore, type FaultStore, type FaultStoreOptions } from './fault-store.js'
export { ackAfter, changesOf, describeEvent, scriptedStore, snapshotOf } from './marbles.js'
export { recordConsumer, type ConsumerRecorder, type RecorderOptions } from './recorder.js'
