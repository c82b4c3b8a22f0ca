import { BehaviorSubject, Observable, Subject, Subscription } from 'rxjs'
import type { Codec } from '../core/codec.js'
import { CodecError } from '../core/errors.js'
import { valuesEqual } from '../core/equal.js'
import type { Change, KeyValue } from '../core/events.js'
import { ZERO_REVISION, type Revision } from '../core/revision.js'
import { createSnapshot, matchesAny, type Snapshot } from '../core/snapshot.js'
import { Decoded, fingerprintOf, type Held } from './held.js'
import type { ConsumerEvent, EventReason } from './types.js'

/** What `decode` returns for a value that does not decode (no codec returns this symbol). */
const FAILED: unique symbol = Symbol('undecodable')

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
}

/**
 * The orchestrator's book-keeping for one consumer: what it has received (its view), the changes
 * waiting for it (coalesced per key), and the deliveries it has not acknowledged yet. The round
 * and the delta pump drive it through its methods; nothing outside changes its fields.
 * Internal; never exported from the package.
 */
export class ConsumerState<R, T> {
  readonly name: string
  readonly codec: Codec<T, R>
  readonly maxInFlight: number
  /** `lazy`: values decode on first read (see `ConsumerOptions.decode`). */
  readonly decodeMode: 'eager' | 'lazy'
  #prefixes: readonly string[]
  /** The consumer's events (a plain Subject: `emit` is the only producer). */
  readonly #events = new Subject<ConsumerEvent<T>>()
  /**
   * The events, counting subscribers: a consumer nobody listens to is not waited for (its round
   * steps are skipped, nothing is delivered), and it is owed a resync for when someone does.
   */
  readonly events$: Observable<ConsumerEvent<T>> = new Observable<ConsumerEvent<T>>(
    (subscriber) => {
      const subscription = this.#events.subscribe(subscriber)
      if (++this.#subscribers === 1 && !this.#closed) this.#listening.next(true)
      return () => {
        subscription.unsubscribe()
        if (--this.#subscribers === 0 && !this.#closed) this.#leave()
      }
    },
  )
  #subscribers = 0
  /** Whether `events$` has a subscriber; emits each change (the orchestrator resumes on `true`). */
  readonly #listening = new BehaviorSubject<boolean>(false)
  readonly listening$: Observable<boolean> = this.#listening.asObservable()
  /** Emits when the consumer closes or loses its last subscriber: its round step ends at once. */
  readonly #away = new Subject<void>()
  readonly away$: Observable<void> = this.#away.asObservable()
  #closed = false
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
  readonly #report: (error: CodecError) => void
  readonly #storeName: string | undefined
  /** What the consumer has been given: prev values come from here (P2). */
  #view = new Map<string, Held<R, T>>()
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

  constructor(options: ConsumerStateOptions<R, T>) {
    this.name = options.name
    this.#prefixes = options.prefixes
    this.codec = options.codec
    this.maxInFlight = options.maxInFlight
    this.decodeMode = options.decode ?? 'eager'
    this.#report = options.report
    this.#storeName = options.storeName
    this.#firstReason = options.firstReason ?? 'startup'
    this.#missedRound = this.#firstReason === 'register'
  }

  /** The key prefixes the consumer follows. */
  get prefixes(): readonly string[] {
    return this.#prefixes
  }

  /** Whether `events$` has a subscriber. */
  get listening(): boolean {
    return this.#listening.value
  }

  /** Whether the consumer was closed. */
  get closed(): boolean {
    return this.#closed
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

  /** Whether the view holds `key`. */
  holdsKey(key: string): boolean {
    return this.#view.has(key)
  }

  /** Whether the view holds `key` written at `revision` or later, or holding the value `raw`. */
  holdsAt(key: string, revision: Revision, raw: R): boolean {
    const held = this.#view.get(key)
    if (held === undefined) return false
    if (held.revision >= revision) return true
    if (held.raw !== undefined) return valuesEqual(held.raw, raw)
    return raw instanceof Uint8Array && fingerprintOf(raw) === held.fingerprint
  }

  /** The keys of the view under `prefix`. */
  keysUnder(prefix: string): string[] {
    return [...this.#view.keys()].filter((key) => key.startsWith(prefix))
  }

  /** How many change events the consumer holds unacknowledged. */
  get inFlight(): number {
    return this.#inFlight
  }

  /** How many keys have changes waiting for delivery. */
  get queued(): number {
    return this.#queue.size
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
    if (revision <= this.#revision || !this.#listening.value) return
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
    if (this.#inFlight >= this.maxInFlight || this.#queue.size === 0 || !this.#listening.value) {
      return undefined
    }
    const out: Change<T>[] = []
    for (const change of this.#queue.values()) {
      const applied = this.#apply(change)
      if (applied) out.push(applied)
    }
    this.#queue.clear()
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

  /** Publishes how many keys wait for delivery (called after each pump, so it does not flicker). */
  publishLag(): void {
    if (this.#lag.value !== this.#queue.size) this.#lag.next(this.#queue.size)
  }

  /** Gives the consumer an event. */
  emit(event: ConsumerEvent<T>): void {
    this.#events.next(event)
  }

  /** Completes the consumer's streams (the orchestrator was closed). */
  complete(): void {
    this.#closed = true
    this.#away.next()
    this.#away.complete()
    this.#listening.complete()
    this.#events.complete()
    this.#lag.complete()
  }

  /**
   * Closes the consumer: its deliveries in flight are cancelled (their ack timeouts with them), a
   * round step waiting for it ends at once, and its streams complete.
   */
  close(): void {
    if (this.#closed) return
    this.#dropDeliveries()
    this.complete()
  }

  /** The last subscriber left: what is in flight is cancelled, and a resync is owed. */
  #leave(): void {
    this.#dropDeliveries()
    this.skipRound()
    this.#listening.next(false)
    this.#away.next()
  }

  /**
   * Replaces the view with this consumer's part of a snapshot, for its full resync; returns the
   * items to deliver. The resync the consumer was owed (see `pendingResync`) is paid.
   */
  takeResync(items: readonly KeyValue<R>[]): KeyValue<T>[] {
    this.#needsResync = false
    this.#missedRound = false
    const previous = this.#view
    this.#view = new Map()
    const out: KeyValue<T>[] = []
    for (const item of items) {
      if (!this.matches(item.key)) continue
      if (this.decodeMode === 'lazy') {
        // Nothing is decoded here: that is the point of lazy mode. A value the consumer already
        // holds (same bytes) keeps its cell, so it is not decoded a second time.
        const held = previous.get(item.key)
        const value =
          held && valuesEqual(held.raw, item.value)
            ? (held.value as Decoded<R, T>)
            : Decoded.later<R, T>(this, item.key, item.value)
        this.#view.set(item.key, {
          raw: item.value,
          fingerprint: 0,
          value,
          revision: item.revision,
        })
        out.push(this.#lazyItem(item.key, value, item.revision))
        continue
      }
      const value = this.#decode(item.key, item.value)
      if (value !== FAILED) {
        this.#view.set(item.key, this.#held(item.value, value, item.revision))
        out.push({ key: item.key, value, revision: item.revision })
      } else {
        // Keep the last good value of an undecodable key (P6).
        const held = previous.get(item.key)
        if (held) {
          this.#view.set(item.key, held)
          out.push({ key: item.key, value: held.value as T, revision: held.revision })
        }
      }
    }
    return out
  }

  /** The changes that bring the view to this consumer's part of a snapshot, applied to the view. */
  diffTo(items: readonly KeyValue<R>[], revision: Revision): Change<T>[] {
    const seen = new Set<string>()
    const out: Change<T>[] = []
    for (const item of items) {
      if (!this.matches(item.key)) continue
      seen.add(item.key)
      const held = this.#view.get(item.key)
      if (held && this.#unchanged(held, item)) continue
      const applied = this.#apply({
        op: 'put',
        key: item.key,
        value: item.value,
        revision: item.revision,
      })
      if (applied) out.push(applied)
    }
    for (const key of [...this.#view.keys()]) {
      if (seen.has(key)) continue
      const applied = this.#apply({ op: 'delete', key, revision })
      if (applied) out.push(applied)
    }
    return out
  }

  /** Unsubscribes the deliveries awaiting acks (cancelling their timeouts) and empties the queue. */
  #dropDeliveries(): void {
    this.#deliveries.unsubscribe()
    this.#deliveries = new Subscription()
    this.#inFlight = 0
    this.#queue.clear()
    this.publishLag()
  }

  /**
   * Whether a snapshot's item holds the value the view has for its key. With the raw value kept,
   * the values are compared. With a fingerprint: another fingerprint means another value; the
   * same fingerprint and revision, the same value (a collision would need both); the same
   * fingerprint at another revision is most likely the same bytes written again, but the new
   * value is decoded and compared to be sure (a failure to decode is reported, and the key keeps
   * its last good value, as `apply` would do).
   */
  #unchanged(held: Held<R, T>, item: KeyValue<R>): boolean {
    if (held.raw !== undefined) return valuesEqual(held.raw, item.value)
    if (!(item.value instanceof Uint8Array) || fingerprintOf(item.value) !== held.fingerprint) {
      return false
    }
    if (held.revision === item.revision) return true
    const value = this.#decode(item.key, item.value)
    return value === FAILED || valuesEqual(held.value, value)
  }

  /** What the view keeps of a decoded value (eager mode): its bytes as a fingerprint. */
  #held(raw: R, value: T, revision: Revision): Held<R, T> {
    return raw instanceof Uint8Array
      ? { raw: undefined, fingerprint: fingerprintOf(raw), value, revision }
      : { raw, fingerprint: 0, value, revision }
  }

  snapshot(): Snapshot<T> {
    return createSnapshot(
      [...this.#view].map(([key, held]) =>
        this.decodeMode === 'lazy'
          ? this.#lazyItem(key, held.value as Decoded<R, T>, held.revision)
          : { key, value: held.value as T, revision: held.revision },
      ),
    )
  }

  /** Decodes a raw value for a lazy cell: reports a failure (once: the cell keeps it) and throws it. */
  decodeOrThrow(key: string, raw: R): T {
    try {
      return this.codec.decode(raw)
    } catch (cause) {
      const error = new CodecError(key, this.codec.name, cause, this.name, this.#storeName)
      this.#report(error)
      throw error
    }
  }

  /**
   * A key-value as a lazy consumer receives it: `value` is a getter (own and enumerable, so
   * spreading and deep equality read it) that decodes on first read.
   */
  #lazyItem(key: string, value: Decoded<R, T>, revision: Revision): KeyValue<T> {
    return {
      key,
      get value() {
        return value.get()
      },
      revision,
    }
  }

  /** Applies one store change to the view; the consumer's change, or undefined when there is none. */
  #apply(change: Change<R>): Change<T> | undefined {
    const held = this.#view.get(change.key)
    if (change.op === 'delete') {
      // A delete of a key this consumer never held carries nothing to remove.
      if (!held) return undefined
      this.#view.delete(change.key)
      if (this.decodeMode === 'lazy') {
        const prev = held.value as Decoded<R, T>
        return {
          op: 'delete',
          key: change.key,
          get prev() {
            return prev.get()
          },
          revision: change.revision,
        }
      }
      return { op: 'delete', key: change.key, prev: held.value as T, revision: change.revision }
    }
    if (this.decodeMode === 'lazy') {
      // prev is the cell this consumer was given for the key: read, it is the value it saw,
      // decoded once for the view and every event (P2).
      const value = Decoded.later<R, T>(this, change.key, change.value)
      this.#view.set(change.key, {
        raw: change.value,
        fingerprint: 0,
        value,
        revision: change.revision,
      })
      const prev = held?.value as Decoded<R, T> | undefined
      return prev
        ? {
            op: 'put',
            key: change.key,
            get value() {
              return value.get()
            },
            get prev() {
              return prev.get()
            },
            revision: change.revision,
          }
        : {
            op: 'put',
            key: change.key,
            get value() {
              return value.get()
            },
            revision: change.revision,
          }
    }
    const value = this.#decode(change.key, change.value)
    if (value === FAILED) return undefined
    this.#view.set(change.key, this.#held(change.value, value, change.revision))
    return held
      ? {
          op: 'put',
          key: change.key,
          value,
          prev: held.value as T,
          revision: change.revision,
        }
      : { op: 'put', key: change.key, value, revision: change.revision }
  }

  /** The decoded value, or {@link FAILED} (reported) when it does not decode. */
  #decode(key: string, raw: R): T | typeof FAILED {
    try {
      return this.codec.decode(raw)
    } catch (error) {
      this.#report(new CodecError(key, this.codec.name, error, this.name, this.#storeName))
      return FAILED
    }
  }
}
