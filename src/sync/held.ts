import type { Change, DeleteChange, KeyValue, PutChange } from '../core/events.js'
import type { Revision } from '../core/revision.js'

/**
 * One key as a consumer holds it: its value, decoded already for an eager consumer (`T`), a
 * {@link Decoded} cell for a lazy one; and what a later snapshot is compared with (P4): the raw
 * store value, or, for the bytes of an eager consumer, only their fingerprint (the consumer has
 * the decoded value: keeping the bytes too would double what a key costs; see
 * `ConsumerState`'s `unchanged`).
 * One object per key and consumer: at 100k keys every extra object per key shows.
 */
export interface Held<R, T> {
  /** The raw store value, or undefined when `fingerprint` stands for its bytes. */
  readonly raw: R | undefined
  /** The fingerprint of the raw bytes when `raw` is not kept, else 0. */
  readonly fingerprint: number
  readonly value: T | Decoded<R, T>
  readonly revision: Revision
}

/** A 32-bit FNV-1a hash of bytes (their length mixed in): two different values rarely share one. */
export function fingerprintOf(bytes: Uint8Array): number {
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
export class Decoded<R, T> {
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

/** What decodes a lazy cell's raw value: the consumer, which also reports a failure. */
export interface Decoder<R, T> {
  decodeOrThrow(key: string, raw: R): T
}

/**
 * A key-value as a lazy consumer receives it: `value` is a getter (own and enumerable, so
 * spreading and deep equality read it) that decodes on first read.
 */
export function lazyItem<R, T>(key: string, value: Decoded<R, T>, revision: Revision): KeyValue<T> {
  return new LazyKeyValue(key, value, revision)
}

/**
 * A lazy item. Its `value` getter is one function shared by every item, defined on each item
 * (own, enumerable): an object literal with a getter makes a new function per item, and V8 then
 * keeps each item as a dictionary of its own, about 4x slower to make at 100k keys and heavier on
 * the garbage collector. The cell is a private field: spreading and deep equality do not see it.
 */
class LazyKeyValue<R, T> implements KeyValue<T> {
  // Declared, not initialized: the properties come in the order key, value, revision.
  declare readonly key: string
  declare readonly value: T
  declare readonly revision: Revision
  readonly #cell: Decoded<R, T>

  constructor(key: string, cell: Decoded<R, T>, revision: Revision) {
    this.#cell = cell
    ;(this as { key: string }).key = key
    Object.defineProperty(this, 'value', LAZY_VALUE)
    ;(this as { revision: Revision }).revision = revision
  }

  static read(item: LazyKeyValue<unknown, unknown>): unknown {
    return item.#cell.get()
  }
}

/** The one `value` getter of every {@link LazyKeyValue}: the same descriptor keeps them alike. */
const LAZY_VALUE: PropertyDescriptor = {
  get(this: LazyKeyValue<unknown, unknown>) {
    return LazyKeyValue.read(this)
  },
  enumerable: true,
  configurable: true,
}

/** A lazy consumer's put: `value` and `prev` (the cell it was given before) are getters. */
export function lazyPut<R, T>(
  key: string,
  value: Decoded<R, T>,
  prev: Decoded<R, T> | undefined,
  revision: Revision,
): Change<T> {
  return new LazyPut(key, value, prev, revision)
}

/** A lazy consumer's delete: `prev` is a getter on the cell it held. */
export function lazyDelete<R, T>(key: string, prev: Decoded<R, T>, revision: Revision): Change<T> {
  return new LazyDelete(key, prev, revision)
}

/**
 * A lazy put, made like {@link LazyKeyValue}: shared getters defined on each change (own,
 * enumerable, in the order op, key, value, prev, revision; `prev` only when there is one), the
 * cells in private fields.
 */
class LazyPut<R, T> implements PutChange<T> {
  declare readonly op: 'put'
  declare readonly key: string
  declare readonly value: T
  declare readonly prev?: T
  declare readonly revision: Revision
  readonly #value: Decoded<R, T>
  readonly #prev: Decoded<R, T> | undefined

  constructor(
    key: string,
    value: Decoded<R, T>,
    prev: Decoded<R, T> | undefined,
    revision: Revision,
  ) {
    this.#value = value
    this.#prev = prev
    const fields = this as { op: 'put'; key: string; revision: Revision }
    fields.op = 'put'
    fields.key = key
    Object.defineProperty(this, 'value', PUT_VALUE)
    if (prev !== undefined) Object.defineProperty(this, 'prev', PUT_PREV)
    fields.revision = revision
  }

  static value(change: LazyPut<unknown, unknown>): unknown {
    return change.#value.get()
  }

  static prev(change: LazyPut<unknown, unknown>): unknown {
    return change.#prev?.get()
  }
}

/** A lazy delete: `prev` a shared getter (see {@link LazyPut}), the cell in a private field. */
class LazyDelete<R, T> implements DeleteChange<T> {
  declare readonly op: 'delete'
  declare readonly key: string
  declare readonly prev: T
  declare readonly revision: Revision
  readonly #prev: Decoded<R, T>

  constructor(key: string, prev: Decoded<R, T>, revision: Revision) {
    this.#prev = prev
    const fields = this as { op: 'delete'; key: string; revision: Revision }
    fields.op = 'delete'
    fields.key = key
    Object.defineProperty(this, 'prev', DELETE_PREV)
    fields.revision = revision
  }

  static prev(change: LazyDelete<unknown, unknown>): unknown {
    return change.#prev.get()
  }
}

/** The getters every lazy change shares (one descriptor each keeps the changes alike). */
const PUT_VALUE: PropertyDescriptor = {
  get(this: LazyPut<unknown, unknown>) {
    return LazyPut.value(this)
  },
  enumerable: true,
  configurable: true,
}
const PUT_PREV: PropertyDescriptor = {
  get(this: LazyPut<unknown, unknown>) {
    return LazyPut.prev(this)
  },
  enumerable: true,
  configurable: true,
}
const DELETE_PREV: PropertyDescriptor = {
  get(this: LazyDelete<unknown, unknown>) {
    return LazyDelete.prev(this)
  },
  enumerable: true,
  configurable: true,
}

// The lazy items and changes stand for the plain objects an eager consumer gets: checks that
// compare constructors (toStrictEqual in Jest and Vitest, lodash's isPlainObject) see Object.
for (const type of [LazyKeyValue, LazyPut, LazyDelete]) {
  Object.defineProperty(type.prototype, 'constructor', { value: Object })
}
