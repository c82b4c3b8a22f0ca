import { valuesEqual } from './equal.js'
import { byKey } from './order.js'
import type { Change, KeyValue } from './events.js'
import type { Revision } from './revision.js'

/**
 * A Map that refuses changes once built (`set`, `delete` and `clear` throw a TypeError). A
 * snapshot is read by every consumer of a round, so nobody may change it in place. (Freezing
 * needs no library: immer was used for it and was 15% of a minimal browser bundle.)
 */
class FrozenMap<K, V> extends Map<K, V> {
  readonly #frozen: boolean
  constructor(entries: Iterable<readonly [K, V]>) {
    super()
    for (const [key, value] of entries) super.set(key, value)
    this.#frozen = true
    Object.freeze(this)
  }

  override set(key: K, value: V): this {
    if (this.#frozen) refuse('set')
    return super.set(key, value)
  }

  override delete(key: K): boolean {
    if (this.#frozen) refuse('delete')
    return super.delete(key)
  }

  override clear(): void {
    if (this.#frozen) refuse('clear')
    super.clear()
  }
}

function refuse(method: string): never {
  throw new TypeError(
    `Snapshot.${method}: a snapshot is frozen; applyChanges() returns a new one with changes applied`,
  )
}

/** An immutable view of a keyspace: key to its value and revision. Frozen; share it freely. */
export type Snapshot<V> = ReadonlyMap<string, KeyValue<V>>

/**
 * Builds a frozen {@link Snapshot} from a listing. A key listed twice keeps its later entry.
 */
export function createSnapshot<V>(items: Iterable<KeyValue<V>>): Snapshot<V> {
  const map = new Map<string, KeyValue<V>>()
  for (const item of items) map.set(item.key, item)
  return new FrozenMap(map)
}

/**
 * Returns a new frozen snapshot with `changes` applied; `snapshot` is left untouched and unchanged
 * entries are shared.
 */
export function applyChanges<V>(snapshot: Snapshot<V>, changes: Iterable<Change<V>>): Snapshot<V> {
  const next = new Map(snapshot)
  for (const change of changes) {
    if (change.op === 'put') {
      next.set(change.key, { key: change.key, value: change.value, revision: change.revision })
    } else {
      next.delete(change.key)
    }
  }
  return new FrozenMap(next)
}

/**
 * The changes that turn `before` into `after`, sorted by key: a put for every key that is new or
 * holds a different value (with `prev` from `before`), and a delete carrying the last value for
 * every key that is gone. Deletes get `revision`, the revision of the new listing.
 *
 * ```
 * before: {a:1, b:2}   after: {a:1, b:3, c:4}   =>   put b (prev 2), put c
 * ```
 */
export function diffSnapshots<V>(
  before: ReadonlyMap<string, { readonly value: V }>,
  after: Snapshot<V>,
  revision: Revision,
  equals: (a: V, b: V) => boolean = valuesEqual,
): Change<V>[] {
  const changes: Change<V>[] = []
  for (const [key, item] of after) {
    const old = before.get(key)
    if (old === undefined) {
      changes.push({ op: 'put', key, value: item.value, revision: item.revision })
    } else if (!equals(old.value, item.value)) {
      changes.push({ op: 'put', key, value: item.value, prev: old.value, revision: item.revision })
    }
  }
  for (const [key, old] of before) {
    if (!after.has(key)) changes.push({ op: 'delete', key, prev: old.value, revision })
  }
  return changes.sort(byKey)
}

/** Whether `key` falls under any of `prefixes`. */
export function matchesAny(key: string, prefixes: readonly string[]): boolean {
  for (const prefix of prefixes) if (key.startsWith(prefix)) return true
  return false
}
