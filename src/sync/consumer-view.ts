import type { Codec } from '../core/codec.js'
import { CodecError } from '../core/errors.js'
import { valuesEqual } from '../core/equal.js'
import type { Change, KeyValue } from '../core/events.js'
import type { Revision } from '../core/revision.js'
import { createSnapshot, type Snapshot } from '../core/snapshot.js'
import type { Applied } from './key-retry.js'
import { Decoded, fingerprintOf, lazyDelete, lazyItem, lazyPut, type Held } from './held.js'

/** What `decode` returns for a value that does not decode (no codec returns this symbol). */
const FAILED: unique symbol = Symbol('undecodable')

/** How a consumer's view decodes and reports. */
export interface ConsumerViewOptions<R, T> {
  /** The consumer's name, for its `CodecError`s. */
  readonly name: string
  readonly codec: Codec<T, R>
  /** `lazy`: values decode on first read (see `ConsumerOptions.decode`). */
  readonly decode: 'eager' | 'lazy'
  /** Where a value that does not decode is reported (eager: at delivery; lazy: at first read). */
  readonly report: (error: CodecError) => void
  /** The store's name, for the `CodecError`s of this consumer. */
  readonly storeName: string | undefined
}

/**
 * What one consumer has been given: its view, where every `prev` comes from (P2). It applies
 * store changes and snapshots to the view and returns the consumer's changes and items, decoded
 * (eager) or as lazy cells. Internal; never exported from the package.
 */
export class ConsumerView<R, T> {
  readonly name: string
  readonly codec: Codec<T, R>
  readonly decodeMode: 'eager' | 'lazy'
  readonly #report: (error: CodecError) => void
  readonly #storeName: string | undefined
  /** The view by key, or undefined while it is still `#given` (see `#map`). */
  #view: Map<string, Held<R, T>> | undefined = new Map()
  /**
   * The last resync's items, while the view is not a map yet: a resync of 100k keys does not
   * insert them into a map, nor hash each value, before the consumer gets them (the first view
   * waits for nothing it does not need); the map is made at the first operation that reads the
   * view, or when the round ends (`settle`), so the raw values are not kept longer.
   */
  #given: Given<R, T> | undefined

  constructor(options: ConsumerViewOptions<R, T>) {
    this.name = options.name
    this.codec = options.codec
    this.decodeMode = options.decode
    this.#report = options.report
    this.#storeName = options.storeName
  }

  /** Whether the view holds `key`. */
  holdsKey(key: string): boolean {
    return this.#map().has(key)
  }

  /** Whether the view holds `key` written at `revision` or later, or holding the value `raw`. */
  holdsAt(key: string, revision: Revision, raw: R): boolean {
    const held = this.#map().get(key)
    if (held === undefined) return false
    if (held.revision >= revision) return true
    if (held.raw !== undefined) return valuesEqual(held.raw, raw)
    return raw instanceof Uint8Array && fingerprintOf(raw) === held.fingerprint
  }

  /** The keys of the view under `prefix`. */
  keysUnder(prefix: string): string[] {
    return [...this.#map().keys()].filter((key) => key.startsWith(prefix))
  }

  /**
   * Replaces the view with this consumer's part of a snapshot, for its full resync; returns the
   * items to deliver. The view stays a list of what was given until something reads it (`#map`).
   */
  replace(items: readonly KeyValue<R>[], matches: (key: string) => boolean): KeyValue<T>[] {
    // The view before, looked up only when needed: a lazy consumer's cells kept, a last good
    // value (P6). An empty one (the first resync) is never made into a map.
    const before = this.#given
    let previous = this.#view
    const empty = before === undefined ? previous?.size === 0 : before.raws.length === 0
    const lookup = (key: string): Held<R, T> | undefined =>
      empty ? undefined : (previous ??= viewOf(before as Given<R, T>, this)).get(key)
    const given: Given<R, T> = { raws: [], values: [], kept: undefined }
    this.#view = undefined
    this.#given = given
    const out: KeyValue<T>[] = []
    for (const item of items) {
      if (!matches(item.key)) continue
      if (this.decodeMode === 'lazy') {
        // Nothing is decoded here: that is the point of lazy mode. A value the consumer already
        // holds (same bytes) keeps its cell, so it is not decoded a second time.
        const held = lookup(item.key)
        const value =
          held && valuesEqual(held.raw, item.value)
            ? (held.value as Decoded<R, T>)
            : Decoded.later<R, T>(this, item.key, item.value)
        given.raws.push(item)
        given.values.push(value)
        out.push(lazyItem(item.key, value, item.revision))
        continue
      }
      const value = this.#decode(item.key, item.value)
      if (value !== FAILED) {
        given.raws.push(item)
        given.values.push(value)
        out.push({ key: item.key, value, revision: item.revision })
      } else {
        // Keep the last good value of an undecodable key (P6).
        const held = lookup(item.key)
        if (held) {
          ;(given.kept ??= new Map()).set(item.key, held)
          given.raws.push(item)
          given.values.push(held.value)
          out.push({ key: item.key, value: held.value as T, revision: held.revision })
        }
      }
    }
    return out
  }

  /** Makes the view a map now (the round ended): the raw values of the resync are let go. */
  settle(): void {
    this.#map()
  }

  /** The view as a map, made from the last resync's items the first time it is needed. */
  #map(): Map<string, Held<R, T>> {
    if (this.#view === undefined) {
      this.#view = viewOf(this.#given as Given<R, T>, this)
      this.#given = undefined
    }
    return this.#view
  }

  /** The changes that bring the view to this consumer's part of a snapshot, applied to the view. */
  diff(
    items: readonly KeyValue<R>[],
    revision: Revision,
    matches: (key: string) => boolean,
  ): Change<T>[] {
    const seen = new Set<string>()
    const out: Change<T>[] = []
    for (const item of items) {
      if (!matches(item.key)) continue
      seen.add(item.key)
      const held = this.#map().get(item.key)
      if (held && this.#unchanged(held, item)) continue
      const applied = this.apply({
        op: 'put',
        key: item.key,
        value: item.value,
        revision: item.revision,
      })
      if (applied) out.push(applied)
    }
    for (const key of [...this.#map().keys()]) {
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
  #unchanged(held: Held<R, T>, item: KeyValue<R>): boolean {
    if (held.raw !== undefined) return valuesEqual(held.raw, item.value)
    if (!(item.value instanceof Uint8Array) || fingerprintOf(item.value) !== held.fingerprint) {
      return false
    }
    if (held.revision === item.revision) return true
    const value = this.#decode(item.key, item.value)
    return value === FAILED || valuesEqual(held.value, value)
  }

  snapshot(): Snapshot<T> {
    return createSnapshot(
      [...this.#map()].map(([key, held]) =>
        this.decodeMode === 'lazy'
          ? lazyItem(key, held.value as Decoded<R, T>, held.revision)
          : { key, value: held.value as T, revision: held.revision },
      ),
    )
  }

  /**
   * A key's re-delivery after the consumer failed to apply it: its value in the view now (a
   * delete at `revision` when the view no longer holds it), `prev` what the consumer last
   * applied (`applied`). Undefined when there is nothing to bring: gone, and never applied.
   */
  retryChange(key: string, applied: Applied<T>, revision: Revision): Change<T> | undefined {
    const held = this.#map().get(key)
    if (held === undefined) {
      if (!applied.has) return undefined
      return {
        op: 'delete',
        key,
        get prev() {
          return applied.read()
        },
        revision,
      }
    }
    const cell = held.value
    const read = (): T => (cell instanceof Decoded ? cell.get() : cell)
    return applied.has
      ? {
          op: 'put',
          key,
          get value() {
            return read()
          },
          get prev() {
            return applied.read()
          },
          revision: held.revision,
        }
      : {
          op: 'put',
          key,
          get value() {
            return read()
          },
          revision: held.revision,
        }
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

  /** Applies one store change to the view; the consumer's change, or undefined when there is none. */
  apply(change: Change<R>): Change<T> | undefined {
    const view = this.#map()
    const held = view.get(change.key)
    if (change.op === 'delete') {
      // A delete of a key this consumer never held carries nothing to remove.
      if (!held) return undefined
      view.delete(change.key)
      if (this.decodeMode === 'lazy') {
        return lazyDelete(change.key, held.value as Decoded<R, T>, change.revision)
      }
      return { op: 'delete', key: change.key, prev: held.value as T, revision: change.revision }
    }
    if (this.decodeMode === 'lazy') {
      // prev is the cell this consumer was given for the key: read, it is the value it saw,
      // decoded once for the view and every event (P2).
      const value = Decoded.later<R, T>(this, change.key, change.value)
      view.set(change.key, {
        raw: change.value,
        fingerprint: 0,
        value,
        revision: change.revision,
      })
      return lazyPut(change.key, value, held?.value as Decoded<R, T> | undefined, change.revision)
    }
    const value = this.#decode(change.key, change.value)
    if (value === FAILED) return undefined
    view.set(change.key, heldOf(change.value, value, change.revision))
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

/**
 * A resync's part as given, in order: each item from the snapshot and its value as given
 * (decoded, or a lazy consumer's cell); `kept` the keys whose new value did not decode, with the
 * last good one the consumer got instead (P6).
 */
interface Given<R, T> {
  readonly raws: KeyValue<R>[]
  readonly values: (T | Decoded<R, T>)[]
  kept: Map<string, Held<R, T>> | undefined
}

/** The view a resync gave, as a map, in the order given (what `diff` and `snapshot` walk). */
function viewOf<R, T>(
  given: Given<R, T>,
  consumer: { readonly decodeMode: 'eager' | 'lazy' },
): Map<string, Held<R, T>> {
  const view = new Map<string, Held<R, T>>()
  const { raws, values, kept } = given
  const lazy = consumer.decodeMode === 'lazy'
  for (let i = 0; i < raws.length; i++) {
    const item = raws[i] as KeyValue<R>
    const value = values[i] as T | Decoded<R, T>
    const held =
      kept?.get(item.key) ??
      (lazy
        ? { raw: item.value, fingerprint: 0, value, revision: item.revision }
        : heldOf(item.value, value as T, item.revision))
    view.set(item.key, held)
  }
  return view
}

/** What the view keeps of a decoded value (eager mode): its bytes as a fingerprint. */
function heldOf<R, T>(raw: R, value: T, revision: Revision): Held<R, T> {
  return raw instanceof Uint8Array
    ? { raw: undefined, fingerprint: fingerprintOf(raw), value, revision }
    : { raw, fingerprint: 0, value, revision }
}
