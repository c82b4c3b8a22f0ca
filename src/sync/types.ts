import type { Observable, SchedulerLike, Subscription } from 'rxjs'
import type { Codec } from '../core/codec.js'
import type { Duration } from '../core/duration.js'
import type { DatasyncError } from '../core/errors.js'
import type { Change, KeyValue, SnapshotCause } from '../core/events.js'
import type { Revision } from '../core/revision.js'
import type { Snapshot } from '../core/snapshot.js'
import type { TxnCondition, TxnOp } from '../core/store.js'
import type { PersistOptions } from './persist/options.js'

export type { PersistOptions, PersistValues, SnapshotPersistence } from './persist/options.js'

/**
 * Why a consumer received an event:
 * - `startup`: the first resync of the orchestrator.
 * - `live`: a change as it happened.
 * - `reconnect`: the store reconnected and may have missed changes.
 * - `gap`: the store could not prove continuity (compaction, broken watch, index reset, rescan).
 * - `manual`: `resync()` was called.
 * - `register`: the consumer was registered after the orchestrator started.
 * - `restored`: a resync from the snapshot saved by `persist` at an earlier run, given before the
 *   store answered: the data may be old (the status is `restored` until the store answers).
 * - `retry`: a change re-delivered after the consumer named its key as failed (see
 *   {@link failedKeys}).
 */
export type EventReason =
  'startup' | 'live' | 'reconnect' | 'gap' | 'manual' | 'register' | 'restored' | 'retry'

/**
 * Acknowledges an event: `done()` when applied, `done(error)` when not, `done(failedKeys(...))`
 * when applied except the keys named (each is retried alone with backoff, see
 * {@link DatasyncOptions.keyRetry}). A second call does nothing.
 */
export type Done = (error?: unknown) => void

/** The consumer's whole part of a store snapshot. Replace your state with `items`, then `done()`. */
export interface ResyncEvent<T> {
  readonly kind: 'resync'
  readonly consumer: string
  readonly reason: EventReason
  /** The store revision the snapshot was read at. */
  readonly revision: Revision
  /** Every key under the consumer's prefixes, sorted by key, each once. */
  readonly items: readonly KeyValue<T>[]
  readonly done: Done
}

/**
 * Changes under the consumer's prefixes, in commit order per key; `prev` is the value this
 * consumer last received for the key (absent when it had none). Apply them, then `done()`.
 */
export interface ChangeEvent<T> {
  readonly kind: 'change'
  readonly consumer: string
  readonly reason: EventReason
  /** The store revision of the last change in the event. */
  readonly revision: Revision
  readonly changes: readonly Change<T>[]
  readonly done: Done
}

/** What a consumer receives. */
export type ConsumerEvent<T> = ResyncEvent<T> | ChangeEvent<T>

/**
 * What to do when a consumer's ack times out or it calls `done(error)`:
 * - `continue`: report it on `errors$` and go on (the Go original's behaviour).
 * - `retry`: report it, wait `retryDelay`, deliver the same event again (a fresh `done`), up to
 *   `maxRetries` times; then halt.
 * - `halt`: report it, stop the orchestrator with the error and set the status to `halted`.
 */
export type AckPolicy = 'continue' | 'retry' | 'halt'

/** Options of {@link createDatasync}. */
export interface DatasyncOptions {
  /** How long a consumer may take to acknowledge an event. @default '10s' */
  readonly ackTimeout?: Duration
  /** What a late or failed acknowledgement leads to. @default 'continue' */
  readonly onAckFailure?: AckPolicy
  /** Redeliveries under the `retry` policy before the orchestrator halts. @default 3 */
  readonly maxRetries?: number
  /** The wait before a redelivery under the `retry` policy. @default '1s' */
  readonly retryDelay?: Duration
  /**
   * After a gap (reconnect, compaction, broken watch), deliver a full resync round instead of
   * the differences as change events. @default false
   */
  readonly resyncAfterReconnect?: boolean
  /**
   * How many unacknowledged events a consumer may hold; later changes wait and coalesce per key
   * (latest value, earliest prev). Per-consumer option overrides it. @default 1
   */
  readonly maxInFlight?: number
  /** The scheduler for timeouts and delays; a `TestScheduler` in marble specs. @default asyncScheduler */
  readonly scheduler?: SchedulerLike
  /**
   * Keeps the consumers' data across restarts (see {@link PersistOptions}): the last known good
   * snapshot is saved while the orchestrator runs, and given to the consumers at the next start
   * (reason `restored`) before the store answers. Off when absent.
   */
  readonly persist?: PersistOptions
  /**
   * The per-key backoff of keys a consumer names as failed with `done(failedKeys(...))`: the
   * delay before the n-th retry of a key is `base * factor^(n-1)`, at most `cap`, shortened at
   * random by up to `jitter` of itself.
   * @default { base: '1s', factor: 2, cap: '5m', jitter: 0.2 }
   */
  readonly keyRetry?: KeyRetryOptions
  /**
   * Relists every this long and delivers only the differences (a round with reason `gap` that
   * brings each consumer what its view lacks, or nothing): for stores whose change feed can lose
   * events unnoticed (Redis written by outside writers, files on network mounts). Runs only while
   * `in-sync`. @default off
   */
  readonly antiEntropy?: Duration
}

/** Options of the per-key retry of {@link DatasyncOptions.keyRetry}. */
export interface KeyRetryOptions {
  /** The delay before a key's first retry. @default '1s' */
  readonly base?: Duration
  /** Each further retry of the key multiplies the delay by this (at least 1). @default 2 */
  readonly factor?: number
  /** No delay is longer than this. @default '5m' */
  readonly cap?: Duration
  /** The share of each delay that is random, 0 to 1. @default 0.2 */
  readonly jitter?: number
  /** Where the jitter's randomness comes from (a fixed sequence in marble specs). @default Math.random */
  readonly random?: () => number
}

/** Options of {@link Datasync.register}. */
export interface ConsumerOptions<T, R> {
  /** The key prefixes the consumer follows. A key under two of them is delivered once. */
  readonly prefixes: readonly string[]
  /** Decodes the store's values for this consumer. @default the identity (the store's values) */
  readonly codec?: Codec<T, R>
  /** Overrides {@link DatasyncOptions.maxInFlight} for this consumer. */
  readonly maxInFlight?: number
  /**
   * When this consumer's values are decoded with its `codec`.
   *
   * - `eager`: each value is decoded as it is delivered. A value that does not decode is
   *   reported on `errors$` as a `CodecError` (key, codec, consumer) and left out of the event;
   *   the consumer's view keeps the key's last good value (P6).
   * - `lazy`: values are delivered undecoded, and decoded on first read. `value` of a resync
   *   item or of `view()`, and `value` and `prev` of a change, are getters (own, enumerable:
   *   spreading, `JSON.stringify` and deep equality read them) that decode once and keep the
   *   result. The view and the events share it, so a value is decoded at most once for this
   *   consumer, and a change's `prev` is the very value read before (P2). A consumer that reads
   *   a few of 100k resynced values pays for those few.
   *
   *   A value that does not decode is still delivered, because nobody knows until it is read:
   *   each read throws its `CodecError` (naming the key), which is reported on `errors$` once,
   *   at the first read; a value never read is never reported. The "last good value" rule of
   *   eager mode cannot apply: by the time the failure shows, the view holds the bad value, so
   *   `view()` and the next change's `prev` for that key throw the same error until a good value
   *   replaces it. Catch it where you read, and keep your own last good value if you need one.
   *   The codec is called later, at first read: it must not depend on when it runs.
   *
   * @default 'eager'
   */
  readonly decode?: 'eager' | 'lazy'
}

/** A registered consumer. */
export interface Consumer<T> {
  readonly name: string
  /** The key prefixes it follows now (see {@link Consumer.setPrefixes}). */
  readonly prefixes: readonly string[]
  /**
   * The consumer's events. A consumer is waited for only while `events$` has a subscriber: one
   * nobody listens to is skipped by resync rounds and gets no changes, and its first subscriber
   * (or its next one, after the last one left) receives a resync (reason `register`, or
   * `startup` before its first) from a fresh round, then the changes. When the last subscriber
   * leaves, the events it held unacknowledged are cancelled.
   *
   * ```
   * events$:  R-----c--c---c(gap)--c
   *           (R = resync, acked before any c is delivered)
   * ```
   */
  readonly events$: Observable<ConsumerEvent<T>>
  /**
   * Keys with changes waiting: behind unacknowledged events, or for their retry after the
   * consumer named them as failed; 0 when the consumer keeps up.
   */
  readonly lag$: Observable<number>
  /**
   * The keys waiting for a retry after this consumer named them as failed, with their last error
   * and how many times they failed in a row. A key stays here until it is applied (or a resync
   * round brings it again).
   */
  failing(): ReadonlyMap<string, { readonly attempts: number; readonly error: unknown }>
  /** What this consumer has received so far, as a frozen snapshot. */
  view(): Snapshot<T>
  /**
   * Follows other prefixes. The store watch restarts with the new union of prefixes (a fresh
   * snapshot, so no change between the old and the new watch is lost), and this consumer gets
   * one change event with reason `register`: deletes carrying the last value for the keys that
   * left its scope, puts for the keys that entered it. Puts rather than a resync, because a
   * resync means "replace everything you hold", and the keys under the prefixes it keeps did not
   * change. The other consumers receive only what changed in between, if anything.
   *
   * @throws TypeError when `prefixes` is not a non-empty array of strings; ClosedError after
   * {@link Consumer.close}.
   */
  setPrefixes(prefixes: readonly string[]): void
  /**
   * Leaves: no more events (`events$` and `lag$` complete); the events it holds unacknowledged
   * are cancelled (their ack timeouts too); a resync round waiting for it goes on with the next
   * consumer at once; deltas no longer wait for it. Its name can be registered again. The store
   * watch keeps its prefixes until its next restart. A second call does nothing.
   */
  close(): void
}

/** Options of {@link Datasync.commit}. */
export interface CommitOptions<R> {
  /** The transaction's conditions; when one fails nothing is written and nobody is waited for. */
  readonly conditions?: readonly TxnCondition<R>[]
  /** How long to wait for the consumers after the write. @default '30s' */
  readonly timeout?: Duration
}

/** How one consumer took a write made with {@link Datasync.commit}. */
export interface ConsumerOutcome {
  readonly consumer: string
  /** Its `done(error)`, or why it did not apply the write (`timeout`, `closed`). */
  readonly error?: DatasyncError
}

/** What {@link Datasync.commit} did. */
export interface CommitResult {
  /** Whether the conditions held and the write was made. */
  readonly succeeded: boolean
  /** The store revision of the write (the current one when it was not made). */
  readonly revision: Revision
  /** The consumers that covered a written key, in registration order, with their outcomes. */
  readonly consumers: readonly ConsumerOutcome[]
}

/**
 * The orchestrator's state:
 * - `idle`: not started.
 * - `connecting`: waiting for the store's first snapshot.
 * - `resyncing`: a round (resync or gap recovery) is being delivered; deltas wait.
 * - `restored`: the consumers hold the snapshot saved by an earlier run (`persist`), and the
 *   store has not answered yet: the data is not live.
 * - `in-sync`: every consumer acknowledged the round; changes flow.
 * - `degraded`: the store reports a lost connection; it recovers by itself.
 * - `halted`: a consumer failure under the `halt` policy, or a fatal store error, stopped it.
 * - `stopped`: `stop()` or `close()` was called, or `run$` was unsubscribed.
 */
export type SyncState =
  'idle' | 'connecting' | 'resyncing' | 'restored' | 'in-sync' | 'degraded' | 'halted' | 'stopped'

/** The orchestrator's status; `error` says why when halted or degraded. */
export interface SyncStatus {
  readonly state: SyncState
  readonly error?: DatasyncError
}

/**
 * What the orchestrator did, one record per step, for metrics and logs:
 * - `round`: a round started (resync or gap recovery) from a store snapshot.
 * - `delivered`: an event was given to a consumer (`keys`: items or changes it carries).
 * - `acknowledged`: the consumer's ack came, or failed (`error`), after `latencyMs`.
 * - `lag`: how many keys wait for a consumer changed.
 * - `key-failed`: a consumer named a key as failed; it is retried after `delayMs`.
 * - `persisted`: a snapshot was saved (`keys`, `bytes`, how long it took).
 */
export type SyncActivity =
  | {
      readonly type: 'round'
      readonly reason: EventReason
      readonly cause: SnapshotCause
      readonly revision: Revision
    }
  | {
      readonly type: 'delivered'
      readonly consumer: string
      readonly kind: 'resync' | 'change'
      readonly reason: EventReason
      readonly keys: number
    }
  | {
      readonly type: 'acknowledged'
      readonly consumer: string
      readonly kind: 'resync' | 'change'
      readonly latencyMs: number
      readonly error?: DatasyncError
    }
  | { readonly type: 'lag'; readonly consumer: string; readonly lag: number }
  | {
      readonly type: 'key-failed'
      readonly consumer: string
      readonly key: string
      readonly attempts: number
      readonly delayMs: number
    }
  | {
      readonly type: 'persisted'
      readonly revision: Revision
      readonly keys: number
      readonly bytes: number
      readonly ms: number
    }

/** The orchestrator: consumers register, then `start()` (or subscribe to `run$`). */
export interface Datasync<R> {
  /**
   * Registers a consumer. Registration order is resync order. A consumer registered while the
   * orchestrator runs gets its own resync (reason `register`) from a fresh snapshot; the others
   * receive only what changed, if anything.
   *
   * @throws TypeError on a duplicate name, or prefixes that are not a non-empty list of strings.
   */
  register<T = R>(name: string, options: ConsumerOptions<T, R>): Consumer<T>
  /** The names of the registered consumers (closed ones left out), in resync order. */
  consumers(): readonly string[]
  /**
   * Writes `ops` as one transaction of the store and waits until every consumer whose prefixes
   * cover a written key has applied it: acknowledged the event that carried the write (or a
   * later value of its keys that coalesced with it), or held it already (a write that changes
   * nothing for it). Emits one {@link CommitResult} and completes. A consumer's `done(error)` is
   * its outcome's error; a consumer that does not apply the write within `timeout` gets a
   * `timeout` error, one that leaves meanwhile a `closed` error. Consumers that cover none of the
   * keys, and those nobody listens to, are not waited for. The write itself fails as the store's
   * `txn` does (a transaction the store cannot do atomically is refused, nothing is written).
   * Before `start()` or after `stop()` nothing would deliver the write: it fails with a `closed`
   * error and writes nothing.
   *
   * ```
   * commit:     -(w)--------------r|    r: { succeeded, revision, consumers: [a, b] }
   * consumer a: ----c--done
   * consumer b: ----------c--done
   * ```
   */
  commit(ops: readonly TxnOp<R>[], options?: CommitOptions<R>): Observable<CommitResult>
  /**
   * The orchestration itself, cold: subscribing connects to the store and runs rounds and
   * deltas; it emits every status change; unsubscribing stops it and cancels the store watch.
   * Subscribers share one run. Errors only when halted.
   */
  readonly run$: Observable<SyncStatus>
  /** Subscribes to `run$` (errors are kept in `status$` and `errors$`); returns the subscription. */
  start(): Subscription
  /** Starts a fresh full resync round for every consumer (reason `manual`). */
  resync(): void
  /** The current state, replayed to new subscribers. */
  readonly status$: Observable<SyncStatus>
  /** Every failure worth a log line: ack timeouts, `done(error)`, undecodable values, store faults. */
  readonly errors$: Observable<DatasyncError>
  /**
   * Each step as it happens (rounds, deliveries, acks with their latency, lag changes): the
   * source of metrics. Hot; nothing is replayed.
   */
  readonly activity$: Observable<SyncActivity>
  /** Stops the run (status `stopped`). Registered consumers and their views stay; start again later. */
  stop(): void
  /** Stops and completes every stream. The store itself is not closed (it may be shared). */
  close(): void
}
