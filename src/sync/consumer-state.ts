import { BehaviorSubject, Subscription, type Observable } from 'rxjs'
import type { Codec } from '../core/codec.js'
import type { CodecError } from '../core/errors.js'
import type { Change, KeyValue } from '../core/events.js'
import { ZERO_REVISION, type Revision } from '../core/revision.js'
import { matchesAny } from '../core/snapshot.js'
import { ConsumerView } from './consumer-view.js'
import { KeyFailures, KeyRetries, QUIET_KEY_RETRY, type KeyRetryRules } from './key-retry.js'
import { Presence } from './presence.js'
import type { ConsumerEvent, Done, EventReason } from './types.js'

/** The view's reads, for those outside the state: nothing that changes it. */
export type ViewReader<R, T> = Pick<
  ConsumerView<R, T>,
  'holdsKey' | 'holdsAt' | 'keysUnder' | 'snapshot'
>

/** How {@link ConsumerState} is set up: one consumer as `Datasync.register` resolved it. */
export interface ConsumerStateOptions<R, T> {
  readonly name: string
  readonly prefixes: readonly string[]
  readonly codec: Codec<T, R>
  /** How many change events the consumer may hold unacknowledged (see `nextDelivery`). */
  readonly maxInFlight: number
  /** Where a value that does not decode is reported (eager: at delivery; lazy: at first read). */
  readonly report: (error: CodecError) => void
  /** `lazy`: values decode on first read (see `ConsumerOptions.decode`). @default 'eager' */
  readonly decode?: 'eager' | 'lazy'
  /** The store's name, for the `CodecError`s of this consumer. */
  readonly storeName?: string
  /** The reason of the first resync: `register` for a consumer registered late. @default 'startup' */
  readonly firstReason?: EventReason
  /** How keys named as failed are retried. @default 1 s doubling up to 5 min, no jitter */
  readonly keyRetry?: KeyRetryRules
}

/**
 * The orchestrator's book-keeping for one consumer: what it has received (its view), the changes
 * waiting for it (coalesced per key), and the deliveries it has not acknowledged yet. The round
 * and the delta pump drive it through its methods; nothing outside changes its fields.
 * Internal; never exported from the package.
 */
export class ConsumerState<R, T> {
  readonly name: string
  readonly maxInFlight: number
  #prefixes: readonly string[]
  /** Its events and who listens: nobody listening, it is skipped and owed a resync. */
  readonly #presence = new Presence<ConsumerEvent<T>>(() => {
    this.#dropDeliveries()
    this.skipRound()
  })
  readonly events$: Observable<ConsumerEvent<T>> = this.#presence.events$
  readonly listening$: Observable<boolean> = this.#presence.listening$
  readonly away$: Observable<void> = this.#presence.away$
  /** A round step's event is out, unacknowledged. */
  #inStep = false
  /** The prefixes changed: the next round's differences go out with reason `register`. */
  #rescoped = false
  /**
   * A round went by without this consumer (nobody listened, or it was registered while the
   * orchestrator ran): its first subscriber needs a fresh round for its resync.
   */
  #missedRound: boolean
  /** Keys waiting for delivery, as last published (see `publishLag`). */
  readonly #lag = new BehaviorSubject<number>(0)
  readonly lag$: Observable<number> = this.#lag.asObservable()
  /** What the consumer has been given: prev values come from here (P2). */
  readonly #view: ConsumerView<R, T>
  /**
   * Changes not yet delivered: the latest change per key, in first-queued order. Store changes,
   * undecoded: a change that a later one of its key replaces is never decoded.
   */
  readonly #queue = new Map<string, Change<R>>()
  /**
   * The acks awaited for change events delivered and not yet settled: unsubscribed (their
   * timeouts cancelled) when a round or the run ends, since a new snapshot supersedes them.
   */
  #deliveries = new Subscription()
  /** How many change events wait for their acks: at `maxInFlight`, later changes coalesce. */
  #inFlight = 0
  /** Whether the next round must bring a full resync (never synced, or registered late). */
  #needsResync = true
  /** The reason given with the owed resync: `startup`, or `register` for a late consumer. */
  #firstReason: EventReason
  /** Changes at or below this revision are already in the view (or queued for it). */
  #revision: Revision = ZERO_REVISION
  /** The keys the consumer named as failed, waiting for their retry (see `ackOf`). */
  readonly #retries: KeyRetries<T>
  #retriesOnly = false
  /** Counts rounds and run ends: an ack of an event from before one is not applied to retries. */
  #epoch = 0

  constructor(options: ConsumerStateOptions<R, T>) {
    this.name = options.name
    this.#prefixes = options.prefixes
    this.maxInFlight = options.maxInFlight
    this.#view = new ConsumerView<R, T>({
      name: options.name,
      codec: options.codec,
      decode: options.decode ?? 'eager',
      report: options.report,
      storeName: options.storeName,
    })
    this.#firstReason = options.firstReason ?? 'startup'
    this.#missedRound = this.#firstReason === 'register'
    this.#retries = new KeyRetries<T>(options.keyRetry ?? QUIET_KEY_RETRY, this)
  }

  /** The key prefixes the consumer follows. */
  get prefixes(): readonly string[] {
    return this.#prefixes
  }

  /** Whether `events$` has a subscriber. */
  get listening(): boolean {
    return this.#presence.listening
  }

  /** Whether the consumer was closed. */
  get closed(): boolean {
    return this.#presence.closed
  }

  /**
   * Follows other prefixes from the next round on: its differences (keys that left as deletes with
   * their last value, keys that entered as puts) go out with reason `register`.
   */
  setPrefixes(prefixes: readonly string[]): void {
    this.#prefixes = prefixes
    this.#rescoped = true
  }

  /** Whether the prefixes changed since the last round step (and forgets it). */
  takeRescoped(): boolean {
    const rescoped = this.#rescoped
    this.#rescoped = false
    return rescoped
  }

  /**
   * A round reached the consumer while nobody listens: nothing is delivered, and the resync is
   * owed for when someone does.
   */
  skipRound(): void {
    if (!this.#needsResync) this.#firstReason = 'register'
    this.#needsResync = true
    this.#missedRound = true
  }

  /**
   * The resync handed to the consumer was cancelled before its ack (a new snapshot superseded
   * the round): the next round owes it a resync again, with the same reason.
   */
  oweResync(reason: EventReason): void {
    this.#needsResync = true
    this.#firstReason = reason
  }

  /** Whether a round went by without this consumer (its first subscriber needs a fresh one). */
  get missedRound(): boolean {
    return this.#missedRound
  }

  /**
   * A round step handed this consumer its event: it holds an unacknowledged event until
   * `leaveStep`.
   */
  enterStep(): void {
    this.#inStep = true
  }

  /** The round step ended (acknowledged, failed, or cancelled); whether it had delivered. */
  leaveStep(): boolean {
    const was = this.#inStep
    this.#inStep = false
    return was
  }

  /** Whether the consumer holds no unacknowledged event (of a round or of the deltas). */
  get idle(): boolean {
    return this.#inFlight === 0 && !this.#inStep
  }

  /** What the consumer has been given, to read (`commit` waits on it; `view()` shows it). */
  get view(): ViewReader<R, T> {
    return this.#view
  }

  /** How many change events the consumer holds unacknowledged. */
  get inFlight(): number {
    return this.#inFlight
  }

  /** How many keys have changes waiting for delivery, or for their retry. */
  get queued(): number {
    return this.#queue.size + this.#retries.size
  }

  /** Whether the last delivery (`nextDelivery`) carried retries only. */
  get retriesOnly(): boolean {
    return this.#retriesOnly
  }

  /** The keys waiting for their retry, with their attempts and last error. */
  failing(): ReadonlyMap<string, { readonly attempts: number; readonly error: unknown }> {
    return this.#retries.failing()
  }

  /**
   * The `done` a consumer gets for an event carrying `keys` (its changes, or its resync items):
   * `done(failedKeys(...))` acknowledges the event and starts the backoff of each key named,
   * a plain `done()` ends the retry of the keys it carried as retries.
   */
  ackOf(done: Done, event: ConsumerEvent<T>): Done {
    const epoch = this.#epoch
    let called = false
    return (...args: [error?: unknown]) => {
      const [outcome] = args
      if (!called && epoch === this.#epoch) {
        called = true
        const overlapping = this.#inFlight > 1 // another event is out (maxInFlight above 1)
        if (outcome instanceof KeyFailures) {
          this.#retries.failEvent(this.name, outcome, event, overlapping)
          this.publishLag()
          done()
          return
        }
        if (outcome === undefined || outcome === null) {
          this.#retries.succeededEvent(event, overlapping)
        }
      }
      done(...args)
    }
  }

  /**
   * The reason of the full resync the next round owes this consumer (its first one), or
   * undefined when it holds a view and a round brings it only the differences.
   */
  get pendingResync(): EventReason | undefined {
    return this.#needsResync ? this.#firstReason : undefined
  }

  matches(key: string): boolean {
    return matchesAny(key, this.#prefixes)
  }

  /**
   * Queues the changes under this consumer's prefixes that are newer than its view. A consumer
   * owed a resync queues nothing: the resync will bring everything.
   */
  enqueue(changes: readonly Change<R>[], revision: Revision): void {
    if (revision <= this.#revision || !this.#presence.listening) return
    for (const change of changes) {
      if (!this.matches(change.key)) continue
      // Delete-then-insert moves a re-queued key behind the others: per-key order is what counts,
      // and the key's latest change now comes after everything queued before it.
      this.#queue.delete(change.key)
      this.#queue.set(change.key, change)
    }
    this.#revision = revision
  }

  /**
   * The next change event's changes, applied to the view with view-based prev values, and counted
   * in flight; undefined when the consumer holds `maxInFlight` events already, or nothing waits
   * (or nothing of what waited changes its view). Every queued key goes into the one event.
   */
  nextDelivery(): Change<T>[] | undefined {
    if (
      this.#inFlight >= this.maxInFlight ||
      (this.#queue.size === 0 && !this.#retries.anyDue) ||
      !this.#presence.listening
    ) {
      return undefined
    }
    const out: Change<T>[] = []
    for (const change of this.#queue.values()) {
      const applied = this.#view.apply(change)
      // A failing key waits for its retry, which brings its latest value.
      if (applied && !this.#retries.holds(change.key)) out.push(applied)
    }
    this.#queue.clear()
    const live = out.length
    for (const [key, applied] of this.#retries.takeDue()) {
      const retry = this.#view.retryChange(key, applied, this.#revision)
      if (retry) out.push(retry)
      else this.#retries.drop(key)
    }
    this.#retriesOnly = live === 0
    if (out.length === 0) return undefined
    this.#inFlight++
    return out
  }

  /**
   * Holds the ack awaited for the event `nextDelivery` gave, until `settled`. Register it before
   * the event goes out: a consumer may acknowledge at once.
   */
  track(delivery: Subscription): void {
    this.#deliveries.add(delivery)
  }

  /** A delivery was acknowledged (or its failure handled by the policy): room for the next one. */
  settled(delivery: Subscription): void {
    this.#inFlight--
    this.#deliveries.remove(delivery)
  }

  /** A round starts from a snapshot at `revision`: what is queued or in flight is superseded. */
  resetForRound(revision: Revision): void {
    this.#dropDeliveries()
    this.#revision = revision
  }

  /** The run ended: drops what is queued and in flight; the view and its revision stay. */
  cancel(): void {
    this.#dropDeliveries()
  }

  /** A round or the run's end supersedes what is out: retries wait for the next round. */
  #retriesToRound(): void {
    this.#epoch++
    this.#retries.toRound()
  }

  /** Publishes how many keys wait for delivery (called after each pump, so it does not flicker). */
  publishLag(): void {
    const lag = this.queued
    if (this.#lag.value !== lag) this.#lag.next(lag)
  }

  /** Gives the consumer an event. */
  emit(event: ConsumerEvent<T>): void {
    this.#presence.emit(event)
  }

  /** Completes the consumer's streams (the orchestrator was closed). */
  complete(): void {
    this.#presence.close()
    this.#lag.complete()
  }

  /**
   * Closes the consumer: its deliveries in flight are cancelled (their ack timeouts with them), a
   * round step waiting for it ends at once, and its streams complete.
   */
  close(): void {
    if (this.#presence.closed) return
    this.#dropDeliveries()
    this.complete()
  }

  /**
   * Replaces the view with this consumer's part of a snapshot, for its full resync; returns the
   * items to deliver. The resync the consumer was owed (see `pendingResync`) is paid.
   */
  takeResync(items: readonly KeyValue<R>[]): KeyValue<T>[] {
    this.#needsResync = false
    this.#missedRound = false
    this.#retries.takeAll()
    return this.#view.replace(items, (key) => this.matches(key))
  }

  /** The round ended: the view given by its resync is made a map now (see `ConsumerView`). */
  settleView(): void {
    this.#view.settle()
  }

  /**
   * The changes that bring the view to this consumer's part of a snapshot, applied to the view;
   * the keys waiting for a retry come along (their backoff starts again), with `prev` what the
   * consumer last applied.
   */
  diffTo(items: readonly KeyValue<R>[], revision: Revision): Change<T>[] {
    const changes = this.#view.diff(items, revision, (key) => this.matches(key))
    const retried = this.#retries.takeAll()
    if (retried.length === 0) return changes
    const failing = new Map(retried)
    const out = changes.filter((change) => !failing.has(change.key))
    for (const [key, applied] of retried) {
      const change = this.#view.retryChange(key, applied, revision)
      if (change) out.push(change)
    }
    return out
  }

  /** Unsubscribes the deliveries awaiting acks (cancelling their timeouts) and empties the queue. */
  #dropDeliveries(): void {
    this.#retriesToRound()
    this.#deliveries.unsubscribe()
    this.#deliveries = new Subscription()
    this.#inFlight = 0
    this.#queue.clear()
    this.publishLag()
  }
}
