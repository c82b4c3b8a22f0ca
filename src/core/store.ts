import type { Observable } from 'rxjs'
import type { Duration } from './duration.js'
import type { DatasyncError } from './errors.js'
import type { KeyValue, StoreEvent } from './events.js'
import type { Revision } from './revision.js'

/** What a backend can do. Code that needs a capability checks it, or gets a `CapabilityError`. */
export interface Capabilities {
  /** put and delete work (false for FileDB). */
  readonly write: boolean
  /** `txn` is atomic, conditions included. */
  readonly txn: boolean
  /** `put` takes a `ttl`. */
  readonly ttl: boolean
  /** Watch changes carry the previous value from the server itself. */
  readonly nativePrev: boolean
  /** A broken watch resumes from its last revision without a relist while history lasts. */
  readonly resumable: boolean
  /** `delete(prefix, { prefix: true })` is one atomic operation. */
  readonly atomicPrefixDelete: boolean
}

/**
 * The health of a store's connection:
 * - `connecting`: not yet connected (or waiting for a delayed start).
 * - `ready`: connected, watches live.
 * - `degraded`: the connection is lost or failing; the store recovers by itself.
 * - `closed`: `close()` was called, or a fatal error ended it (then `error` says why).
 */
export interface StoreStatus {
  readonly state: 'connecting' | 'ready' | 'degraded' | 'closed'
  readonly error?: DatasyncError
}

/**
 * Options of a watch.
 *
 * `after` asks to resume: a store that can (capabilities.resumable) and still holds the history
 * after that revision emits no snapshot at all, only the change batches with revisions greater
 * than `after`, as if the watch had never stopped. A store that cannot (history compacted, or
 * not resumable) starts as without the option, with a snapshot, and the caller diffs it against
 * what it holds. So a store that ignores `after` is always correct, only slower.
 */
export interface WatchOptions {
  readonly after?: Revision
  /**
   * After each reconnection (a broken watch that comes back), list afresh instead of resuming:
   * the watch emits a snapshot with cause `reconnect` before any later change, so the caller
   * can resync from a listing taken after the outage (the orchestrator's `resyncAfterReconnect`
   * asks for it). A resumable store (capabilities.resumable) honours it; a store that relists
   * after every reconnection anyway, or never loses its connection (memory), needs nothing.
   * Unset, a store follows its own option where it has one (etcd's and PostgreSQL's
   * `resyncAfterReconnect`), else resumes.
   */
  readonly relistOnReconnect?: boolean
}

/** Options of a single put. */
export interface PutOptions {
  /** The key is deleted this long after the put (rounded up to the backend's precision). */
  readonly ttl?: Duration
}

/** Options of a delete. */
export interface DeleteOptions {
  /** Delete every key that starts with the given key. @default false */
  readonly prefix?: boolean
}

/** One operation of a transaction. */
export type TxnOp<V> =
  | { readonly op: 'put'; readonly key: string; readonly value: V; readonly ttl?: Duration }
  | { readonly op: 'delete'; readonly key: string; readonly prefix?: boolean }

/**
 * A condition of a transaction on one key, all of which must hold for the operations to run:
 * `{ key, exists: false }` (put-if-absent), `{ key, value }` (compare-and-swap or -delete on the
 * value), `{ key, revision }` (the key's last write was at that revision; as in etcd, a missing
 * key counts as `ZERO_REVISION`).
 */
export type TxnCondition<V> =
  | { readonly key: string; readonly exists: boolean }
  | { readonly key: string; readonly value: V }
  | { readonly key: string; readonly revision: Revision }

/** Options of a transaction. */
export interface TxnOptions<V> {
  /** Every condition must hold, or no operation runs and the result says `succeeded: false`. */
  readonly conditions?: readonly TxnCondition<V>[]
}

/** What a transaction did. */
export interface TxnResult {
  /** Whether the conditions held and the operations ran. */
  readonly succeeded: boolean
  /** The store revision after the transaction (the current one when it did not run). */
  readonly revision: Revision
}

/**
 * The contract every backend keeps (docs/design.md §3). Everything that touches a server is a
 * cold Observable: nothing happens until it is subscribed, and unsubscribing cancels it. An
 * operation that returns `Observable<void>` emits one `undefined` and completes, so
 * `firstValueFrom` and `lastValueFrom` work on it. `status$` replays the current state and
 * completes after `{ state: 'closed' }`.
 */
export interface KvStore<V = Uint8Array> {
  /** The backend's name as used in messages: `memory`, `etcd`, `redis`, `consul`, `filedb`. */
  readonly name: string
  readonly capabilities: Capabilities
  /**
   * Which store this is, asked of the server, where a store has such a thing (etcd: the
   * cluster id): one string, then complete; an error when the server cannot be reached.
   * Revisions of one store mean nothing in another, so a snapshot saved by `persist` is
   * resumed only on the store it was saved from. Absent where there is none (memory).
   */
  identity?(): Observable<string>
  /**
   * Watches every key under `prefixes`. The first event is a snapshot; then change batches in
   * commit order; after a gap a fresh snapshot with its cause. Never errors for transient faults;
   * errors only on a fatal fault or after `close()`.
   *
   * ```
   * watch(['a/']):  S--c--c---S(gap)--c--
   * ```
   */
  watch(prefixes: readonly string[], options?: WatchOptions): Observable<StoreEvent<V>>
  /** The key's value, or `undefined` when it does not exist. */
  get(key: string): Observable<KeyValue<V> | undefined>
  /** Every key under `prefix` with its value, read at one revision, sorted by key. */
  list(prefix: string): Observable<readonly KeyValue<V>[]>
  /** Every key under `prefix`, sorted. */
  listKeys(prefix: string): Observable<readonly string[]>
  /** Writes a value; with `ttl` the key expires. */
  put(key: string, value: V, options?: PutOptions): Observable<void>
  /** Deletes a key, or every key under a prefix; says how many were deleted. */
  delete(key: string, options?: DeleteOptions): Observable<{ readonly deleted: number }>
  /**
   * Runs the operations atomically when the conditions hold. As in etcd, a key may be written
   * only once per transaction: a second put of it, or a put of a key the same transaction
   * deletes, fails with an `invalid-argument` error naming the key.
   */
  txn(ops: readonly TxnOp<V>[], options?: TxnOptions<V>): Observable<TxnResult>
  /** The connection's health; replays the current state to each new subscriber. */
  readonly status$: Observable<StoreStatus>
  /** Ends every watch and releases connections. Idempotent. */
  close(): Promise<void>
}
