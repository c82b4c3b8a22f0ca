import { enableMapSet, freeze, produce } from 'immer'
import { valuesEqual } from './equal.js'
import { byKey } from './order.js'
import type { Change, KeyValue } from './events.js'
import type { Revision } from './revision.js'

enableMapSet()

/** An immutable view of a keyspace: key to its value and revision. Frozen; share it freely. */
export type Snapshot<V> = ReadonlyMap<string, KeyValue<V>>

/**
 * Builds a frozen {@link Snapshot} from a listing. A key listed twice keeps its later entry.
 */
export function createSnapshot<V>(items: Iterable<KeyValue<V>>): Snapshot<V> {
  const map = new Map<string, KeyValue<V>>()
  for (const item of items) map.set(item.key, item)
  return freeze(map, false)
}

/**
 * Returns a new frozen snapshot with `changes` applied; `snapshot` is left untouched and unchanged
 * entries are shared.
 */
export function applyChanges<V>(snapshot: Snapshot<V>, changes: Iterable<Change<V>>): Snapshot<V> {
  return produce(snapshot as Map<string, KeyValue<V>>, (draft) => {
    for (const change of changes) {
      if (change.op === 'put') {
        draft.set(change.key, {
          key: change.key,
          value: change.value,
          revision: change.revision,
        } as never)
      } else {
        draft.delete(change.key)
      }
    }
  })
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
