import type { Revision } from './revision.js'

/** A key with its value at the revision it was last written. */
export interface KeyValue<V> {
  readonly key: string
  readonly value: V
  /** The revision of the key's last write (etcd's mod_revision). */
  readonly revision: Revision
}

/** The kind of a change: `put` creates or updates, `delete` removes (expiry included). */
export type ChangeOp = 'put' | 'delete'

/** A put of a key: carries the new value; `prev` is the value before, when known. */
export interface PutChange<V> {
  readonly op: 'put'
  readonly key: string
  readonly value: V
  readonly prev?: V
  readonly revision: Revision
}

/** A delete of a key (an expiry included): `prev` is the last value, when known. */
export interface DeleteChange<V> {
  readonly op: 'delete'
  readonly key: string
  readonly prev?: V
  readonly revision: Revision
}

/**
 * One change of one key. From a store, `prev` is present where the backend knows it natively
 * (capabilities.nativePrev); consumers of the orchestrator always get `prev` from their own view.
 */
export type Change<V> = PutChange<V> | DeleteChange<V>

/**
 * Why a store emitted a snapshot:
 * - `startup`: the first snapshot of a watch.
 * - `reconnect`: the connection was lost and came back; events may have been missed.
 * - `compacted`: the history needed to resume was compacted away (etcd).
 * - `index-reset`: the backend's index went backwards (Consul).
 * - `watch-error`: the watch stream broke or the file watcher failed.
 * - `rescan`: a directory was removed and recreated, or another full rescan happened (FileDB).
 */
export type SnapshotCause =
  'startup' | 'reconnect' | 'compacted' | 'index-reset' | 'watch-error' | 'rescan'

/** The whole content under the watched prefixes at one revision. */
export interface SnapshotEvent<V> {
  readonly type: 'snapshot'
  readonly revision: Revision
  readonly items: readonly KeyValue<V>[]
  readonly cause: SnapshotCause
}

/** The changes of one commit (one transaction), in commit order. */
export interface ChangesEvent<V> {
  readonly type: 'changes'
  readonly revision: Revision
  readonly changes: readonly Change<V>[]
}

/**
 * What `KvStore.watch` emits: a snapshot first, then change batches; after a gap a fresh
 * snapshot with its cause.
 */
export type StoreEvent<V> = SnapshotEvent<V> | ChangesEvent<V>
