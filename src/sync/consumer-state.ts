import { BehaviorSubject, Subject, Subscription } from 'rxjs'
import type { Codec } from '../core/codec.js'
import { CodecError } from '../core/errors.js'
import { valuesEqual } from '../core/equal.js'
import type { Change, KeyValue } from '../core/events.js'
import { ZERO_REVISION, type Revision } from '../core/revision.js'
import { createSnapshot, matchesAny, type Snapshot } from '../core/snapshot.js'
import type { ConsumerEvent, EventReason } from './types.js'

/**
 * One key as a consumer holds it: its value, decoded already for an eager consumer (`T`), a
 * {@link Decoded} cell for a lazy one; and what a later snapshot is compared with (P4): the raw
 * store value, or, for the bytes of an eager consumer, only their fingerprint (the consumer has
 * the decoded value: keeping the bytes too would double what a key costs; see `unchanged`).
 * One object per key and consumer: at 100k keys every extra object per key shows.
 */
interface Held<R, T> {
  /** The raw store value, or undefined when `fingerprint` stands for its bytes. */
  readonly raw: R | undefined
  /** The fingerprint of the raw bytes when `raw` is not kept, else 0. */
  readonly fingerprint: number
  readonly value: T | Decoded<R, T>
  readonly revision: Revision
}

/** A 32-bit FNV-1a hash of bytes (their length mixed in): two different values rarely share one. */
function fingerprintOf(bytes: Uint8Array): number {
  let hash = 0x811c9dc5 ^ bytes.length
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ (bytes[i] ?? 0), 0x01000193)
  return hash | 0
}

/**
 * One value as a lazy consumer holds it: it decodes on the first `get()` and keeps the result,
 * value or error: the view and every event that carries the value (as a change's `value`, then
 * as the next change's `prev`) share this one object, so a value is decoded at most once per
 * consumer and a failure is reported once.
 */
class Decoded<R, T> {
  private state: 'pending' | 'ok' | 'failed' = 'pending'
  /** The raw value while pending, the decoded value once ok, the `CodecError` once failed. */
  private held: unknown

  private constructor(
    raw: R,
    /** Decodes (and reports a failure of) a pending value; unused once decoded. */
    private readonly owner: Decoder<R, T>,
    private readonly key: string,
  ) {
    this.held = raw
  }

  /** A value decoded on the first `get()` (lazy mode). */
  static later<R, T>(owner: Decoder<R, T>, key: string, raw: R): Decoded<R, T> {
    return new Decoded<R, T>(raw, owner, key)
  }

  get(): T {
    if (this.state === 'ok') return this.held as T
    if (this.state === 'failed') throw this.held
    try {
      this.held = this.owner.decodeOrThrow(this.key, this.held as R)
      this.state = 'ok'
      return this.held as T
    } catch (error) {
      this.held = error
      this.state = 'failed'
      throw error
    }
  }
}

/** What `decode` returns for a value that does not decode (no codec returns this symbol). */
const FAILED: unique symbol = Symbol('undecodable')

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
  private view = new Map<string, Held<R, T>>()
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
    const previous = this.view
    this.view = new Map()
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
        this.view.set(item.key, { raw: item.value, fingerprint: 0, value, revision: item.revision })
        out.push(this.lazyItem(item.key, value, item.revision))
        continue
      }
      const value = this.decode(item.key, item.value)
      if (value !== FAILED) {
        this.view.set(item.key, this.held(item.value, value, item.revision))
        out.push({ key: item.key, value, revision: item.revision })
      } else {
        // Keep the last good value of an undecodable key (P6).
        const held = previous.get(item.key)
        if (held) {
          this.view.set(item.key, held)
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
      const held = this.view.get(item.key)
      if (held && this.unchanged(held, item)) continue
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

  /**
   * Whether a snapshot's item holds the value the view has for its key. With the raw value kept,
   * the values are compared. With a fingerprint: another fingerprint means another value; the
   * same fingerprint and revision, the same value (a collision would need both); the same
   * fingerprint at another revision is most likely the same bytes written again, but the new
   * value is decoded and compared to be sure (a failure to decode is reported, and the key keeps
   * its last good value, as `apply` would do).
   */
  private unchanged(held: Held<R, T>, item: KeyValue<R>): boolean {
    if (held.raw !== undefined) return valuesEqual(held.raw, item.value)
    if (!(item.value instanceof Uint8Array) || fingerprintOf(item.value) !== held.fingerprint) {
      return false
    }
    if (held.revision === item.revision) return true
    const value = this.decode(item.key, item.value)
    return value === FAILED || valuesEqual(held.value, value)
  }

  /** What the view keeps of a decoded value (eager mode): its bytes as a fingerprint. */
  private held(raw: R, value: T, revision: Revision): Held<R, T> {
    return raw instanceof Uint8Array
      ? { raw: undefined, fingerprint: fingerprintOf(raw), value, revision }
      : { raw, fingerprint: 0, value, revision }
  }

  snapshot(): Snapshot<T> {
    return createSnapshot(
      [...this.view].map(([key, held]) =>
        this.decodeMode === 'lazy'
          ? this.lazyItem(key, held.value as Decoded<R, T>, held.revision)
          : { key, value: held.value as T, revision: held.revision },
      ),
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
   * A key-value as a lazy consumer receives it: `value` is a getter (own and enumerable, so
   * spreading and deep equality read it) that decodes on first read.
   */
  private lazyItem(key: string, value: Decoded<R, T>, revision: Revision): KeyValue<T> {
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
      this.view.set(change.key, {
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
    const value = this.decode(change.key, change.value)
    if (value === FAILED) return undefined
    this.view.set(change.key, this.held(change.value, value, change.revision))
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
  private decode(key: string, raw: R): T | typeof FAILED {
    try {
      return this.codec.decode(raw)
    } catch (error) {
      this.reportError(new CodecError(key, this.codec.name, error, this.name, this.storeName))
      return FAILED
    }
  }
}
