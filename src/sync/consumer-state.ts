import { BehaviorSubject, Subject, Subscription } from 'rxjs'
import type { Codec } from '../core/codec.js'
import { CodecError } from '../core/errors.js'
import { valuesEqual } from '../core/equal.js'
import type { Change, KeyValue } from '../core/events.js'
import { ZERO_REVISION, type Revision } from '../core/revision.js'
import { createSnapshot, matchesAny, type Snapshot } from '../core/snapshot.js'
import type { ConsumerEvent, EventReason } from './types.js'

/** One key as a consumer holds it: the raw store value (for diffs) and its decoded value. */
interface Held<R, T> {
  readonly raw: R
  readonly value: Decoded<R, T>
  readonly revision: Revision
}

/**
 * One value as a consumer holds it. Eager consumers get it decoded already. For lazy consumers
 * it decodes on the first `get()` and keeps the result, value or error: the view and every event
 * that carries the value (as a change's `value`, then as the next change's `prev`) share this one
 * object, so a value is decoded at most once per consumer and a failure is reported once.
 */
class Decoded<R, T> {
  private state: 'pending' | 'ok' | 'failed'
  /** The raw value while pending, the decoded value once ok, the `CodecError` once failed. */
  private held: unknown

  private constructor(
    state: 'pending' | 'ok',
    held: unknown,
    /** Decodes (and reports a failure of) a pending value; unused once decoded. */
    private readonly owner: Decoder<R, T> | undefined,
    private readonly key: string,
  ) {
    this.state = state
    this.held = held
  }

  /** A value decoded already (eager mode). */
  static of<R, T>(value: T): Decoded<R, T> {
    return new Decoded<R, T>('ok', value, undefined, '')
  }

  /** A value decoded on the first `get()` (lazy mode). */
  static later<R, T>(owner: Decoder<R, T>, key: string, raw: R): Decoded<R, T> {
    return new Decoded<R, T>('pending', raw, owner, key)
  }

  get(): T {
    if (this.state === 'ok') return this.held as T
    if (this.state === 'failed') throw this.held
    try {
      this.held = (this.owner as Decoder<R, T>).decodeOrThrow(this.key, this.held as R)
      this.state = 'ok'
      return this.held as T
    } catch (error) {
      this.held = error
      this.state = 'failed'
      throw error
    }
  }
}

interface Decoder<R, T> {
  decodeOrThrow(key: string, raw: R): T
}

/**
 * The orchestrator's book-keeping for one consumer: what it has received (its view), the changes
 * waiting for it (coalesced per key), and how many events it has not acknowledged yet.
 * Internal; never exported from the package.
 */
export class ConsumerState<R, T> {
  readonly events = new Subject<ConsumerEvent<T>>()
  readonly lag = new BehaviorSubject<number>(0)
  /** What the consumer has been given: prev values come from here (P2). */
  readonly view = new Map<string, Held<R, T>>()
  /** Changes not yet delivered; latest change per key, first-queued order. */
  readonly queue = new Map<string, Change<R>>()
  /** Deliveries of change events still waiting for their acks. */
  deltas = new Subscription()
  inFlight = 0
  /** Whether the next round must bring a full resync (never synced, or registered late). */
  needsResync = true
  /** The reason given with the first resync: `startup`, or `register` for a late consumer. */
  firstReason: EventReason = 'startup'
  /** Changes at or below this revision are already in the consumer's view. */
  revision: Revision = ZERO_REVISION

  constructor(
    readonly name: string,
    readonly prefixes: readonly string[],
    readonly codec: Codec<T, R>,
    readonly maxInFlight: number,
    private readonly reportError: (error: CodecError) => void,
    /** `lazy`: values decode on first read (see `ConsumerOptions.decode`). */
    readonly decodeMode: 'eager' | 'lazy' = 'eager',
    /** The store's name, for the `CodecError`s of this consumer. */
    private readonly storeName?: string,
  ) {}

  matches(key: string): boolean {
    return matchesAny(key, this.prefixes)
  }

  /** Queues the changes under this consumer's prefixes that are newer than its view. */
  enqueue(changes: readonly Change<R>[], revision: Revision): void {
    if (revision <= this.revision) return
    for (const change of changes) {
      if (!this.matches(change.key)) continue
      // Delete-then-insert moves a re-queued key behind the others: per-key order is what counts,
      // and the key's latest change now comes after everything queued before it.
      this.queue.delete(change.key)
      this.queue.set(change.key, change)
    }
    this.revision = revision
  }

  /** Publishes how many keys wait for delivery (called after each pump, so it does not flicker). */
  publishLag(): void {
    if (this.lag.value !== this.queue.size) this.lag.next(this.queue.size)
  }

  /** Drops what is queued: a new snapshot supersedes it. */
  resetQueue(revision: Revision): void {
    this.deltas.unsubscribe()
    this.deltas = new Subscription()
    this.inFlight = 0
    this.queue.clear()
    this.revision = revision
    this.publishLag()
  }

  /** Takes every queued change, applies it to the view and returns it with view-based prev values. */
  takeQueued(): Change<T>[] {
    const out: Change<T>[] = []
    for (const change of this.queue.values()) {
      const applied = this.apply(change)
      if (applied) out.push(applied)
    }
    this.queue.clear()
    return out
  }

  /** Replaces the view with this consumer's part of a snapshot; returns the items to deliver. */
  replaceView(items: readonly KeyValue<R>[]): KeyValue<T>[] {
    const previous = new Map(this.view)
    this.view.clear()
    const out: KeyValue<T>[] = []
    for (const item of items) {
      if (!this.matches(item.key)) continue
      if (this.decodeMode === 'lazy') {
        // Nothing is decoded here: that is the point of lazy mode. A value the consumer already
        // holds (same bytes) keeps its cell, so it is not decoded a second time.
        const held = previous.get(item.key)
        const value =
          held && valuesEqual(held.raw, item.value)
            ? held.value
            : Decoded.later<R, T>(this, item.key, item.value)
        this.view.set(item.key, { raw: item.value, value, revision: item.revision })
        out.push(this.item(item.key, value, item.revision))
        continue
      }
      const value = this.decode(item.key, item.value)
      if (value.ok) {
        const decoded = Decoded.of<R, T>(value.value)
        this.view.set(item.key, { raw: item.value, value: decoded, revision: item.revision })
        out.push(this.item(item.key, decoded, item.revision))
      } else {
        // Keep the last good value of an undecodable key (P6).
        const held = previous.get(item.key)
        if (held) {
          this.view.set(item.key, held)
          out.push(this.item(item.key, held.value, held.revision))
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
      const held = this.view.get(item.key)
      if (held && valuesEqual(held.raw, item.value)) continue
      const applied = this.apply({
        op: 'put',
        key: item.key,
        value: item.value,
        revision: item.revision,
      })
      if (applied) out.push(applied)
    }
    for (const key of [...this.view.keys()]) {
      if (seen.has(key)) continue
      const applied = this.apply({ op: 'delete', key, revision })
      if (applied) out.push(applied)
    }
    return out
  }

  snapshot(): Snapshot<T> {
    return createSnapshot(
      [...this.view].map(([key, held]) => this.item(key, held.value, held.revision)),
    )
  }

  /** Decodes a raw value for a lazy cell: reports a failure (once: the cell keeps it) and throws it. */
  decodeOrThrow(key: string, raw: R): T {
    try {
      return this.codec.decode(raw)
    } catch (cause) {
      const error = new CodecError(key, this.codec.name, cause, this.name, this.storeName)
      this.reportError(error)
      throw error
    }
  }

  /**
   * A key-value as the consumer receives it. In lazy mode `value` is a getter (own and
   * enumerable, so spreading and deep equality read it) that decodes on first read.
   */
  private item(key: string, value: Decoded<R, T>, revision: Revision): KeyValue<T> {
    if (this.decodeMode === 'eager') return { key, value: value.get(), revision }
    return {
      key,
      get value() {
        return value.get()
      },
      revision,
    }
  }

  /** Applies one store change to the view; the consumer's change, or undefined when there is none. */
  private apply(change: Change<R>): Change<T> | undefined {
    const held = this.view.get(change.key)
    if (change.op === 'delete') {
      // A delete of a key this consumer never held carries nothing to remove.
      if (!held) return undefined
      this.view.delete(change.key)
      if (this.decodeMode === 'lazy') {
        const prev = held.value
        return {
          op: 'delete',
          key: change.key,
          get prev() {
            return prev.get()
          },
          revision: change.revision,
        }
      }
      return { op: 'delete', key: change.key, prev: held.value.get(), revision: change.revision }
    }
    if (this.decodeMode === 'lazy') {
      // prev is the cell this consumer was given for the key: read, it is the value it saw,
      // decoded once for the view and every event (P2).
      const value = Decoded.later<R, T>(this, change.key, change.value)
      this.view.set(change.key, { raw: change.value, value, revision: change.revision })
      const prev = held?.value
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
    const value = this.decode(change.key, change.value)
    if (!value.ok) return undefined
    const decoded = Decoded.of<R, T>(value.value)
    this.view.set(change.key, { raw: change.value, value: decoded, revision: change.revision })
    return held
      ? {
          op: 'put',
          key: change.key,
          value: value.value,
          prev: held.value.get(),
          revision: change.revision,
        }
      : { op: 'put', key: change.key, value: value.value, revision: change.revision }
  }

  private decode(key: string, raw: R): { ok: true; value: T } | { ok: false } {
    try {
      return { ok: true, value: this.codec.decode(raw) }
    } catch (error) {
      this.reportError(new CodecError(key, this.codec.name, error, this.name, this.storeName))
      return { ok: false }
    }
  }
}
