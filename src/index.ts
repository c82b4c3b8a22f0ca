export { bytes, identity, json, string, type Codec } from './core/codec.js'
export { toMillis, type Duration } from './core/duration.js'
export {
  AckTimeoutError,
  AuthError,
  CapabilityError,
  ClosedError,
  CodecError,
  ConfigError,
  ConsumerError,
  DatasyncError,
  UnavailableError,
  isRetryable,
  type DatasyncErrorOptions,
  type ErrorCode,
} from './core/errors.js'
export type {
  Change,
  ChangeOp,
  ChangesEvent,
  DeleteChange,
  KeyValue,
  PutChange,
  SnapshotCause,
  SnapshotEvent,
  StoreEvent,
} from './core/events.js'
export {
  compareRevisions,
  maxRevision,
  revision,
  ZERO_REVISION,
  type Revision,
} from './core/revision.js'
export { applyChanges, createSnapshot, diffSnapshots, type Snapshot } from './core/snapshot.js'
export type {
  Capabilities,
  DeleteOptions,
  KvStore,
  PutOptions,
  WatchOptions,
  StoreStatus,
  TxnCondition,
  TxnOp,
  TxnOptions,
  TxnResult,
} from './core/store.js'
export { withCodec, withPrefix, type TypedStore } from './core/views.js'
export { createDatasync, type Datasync } from './sync/datasync.js'
export {
  createLayeredStore,
  createRoutedStore,
  type CombinedSource,
  type CombinedStore,
  type CombinedStoreOptions,
  type LayeredStoreOptions,
  type NamedSource,
  type RoutedStoreOptions,
  type SourceInput,
} from './sync/combined/index.js'
export {
  publishTo,
  type Publication,
  type PublishOptions,
  type PublishResult,
} from './sync/publish.js'
export { batchQuiet, mergeEvents, type BatchQuietOptions } from './sync/operators/batch-quiet.js'
export { filterEvents, mapValues } from './sync/operators/filter-events.js'
export {
  handleEvents,
  type EventHandler,
  type HandledEvent,
  type HandleEventsOptions,
} from './sync/operators/handle-events.js'
export { toViews } from './sync/operators/to-views.js'
export { failedKeys, KeyFailedError, KeyFailures } from './sync/key-retry.js'
export { SnapshotPersistError, type PersistProblem } from './sync/persist/format.js'
export { webStoragePersistence, type StorageLike } from './sync/persist/web-storage.js'
export type {
  AckPolicy,
  CommitOptions,
  CommitResult,
  ConsumerOutcome,
  ChangeEvent,
  Consumer,
  ConsumerEvent,
  ConsumerOptions,
  DatasyncOptions,
  Done,
  EventReason,
  KeyRetryOptions,
  PersistOptions,
  PersistValues,
  ResyncEvent,
  SnapshotPersistence,
  SyncActivity,
  SyncState,
  SyncStatus,
} from './sync/types.js'
export {
  createMemoryStore,
  type MemoryStore,
  type MemoryStoreOptions,
} from './backends/memory/index.js'
