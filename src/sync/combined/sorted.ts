import { compareKeys } from '../../internal/order.js'

/**
 * Merges lists into one sorted by key, each key once, mapped by `emit` (given the item and the
 * index of its list): where lists share a key, the later list wins (a higher layer). A list is
 * sorted first unless it already is (a store's listing and snapshot normally are, so this is a
 * linear merge of a few lists).
 */
export function mergeSorted<T, R>(
  lists: readonly (readonly T[])[],
  keyOf: (item: T) => string,
  emit: (item: T, list: number) => R,
): R[] {
  const sorted = lists.map((list) =>
    isSorted(list, keyOf) ? list : [...list].sort((a, b) => compareKeys(keyOf(a), keyOf(b))),
  )
  const apart = disjoint(sorted, keyOf)
  if (apart !== undefined) {
    return apart.flatMap((list) => (sorted[list] ?? []).map((item) => emit(item, list)))
  }
  const heads = sorted.map(() => 0)
  const out: R[] = []
  for (;;) {
    let best = -1
    let bestKey = ''
    for (let list = 0; list < sorted.length; list++) {
      const item = sorted[list]?.[heads[list] ?? 0]
      if (item === undefined) continue
      const key = keyOf(item)
      if (best < 0 || key <= bestKey) {
        // Equal keys: the later list wins; the earlier one's item is skipped below.
        best = list
        bestKey = key
      }
    }
    if (best < 0) return out
    for (let list = 0; list < sorted.length; list++) {
      const item = sorted[list]?.[heads[list] ?? 0]
      if (item === undefined || keyOf(item) !== bestKey) continue
      if (list === best) out.push(emit(item, list))
      heads[list] = (heads[list] ?? 0) + 1
    }
  }
}

/** {@link mergeSorted} keeping the items as they are. */
export function mergeByKey<T>(lists: readonly (readonly T[])[], keyOf: (item: T) => string): T[] {
  return mergeSorted(lists, keyOf, (item) => item)
}

/**
 * The order of the non-empty sorted lists when each lies wholly before the next (sources that
 * own separate prefixes): then merging is concatenating. Undefined when their ranges overlap.
 */
function disjoint<T>(
  lists: readonly (readonly T[])[],
  keyOf: (item: T) => string,
): number[] | undefined {
  const order = lists
    .map((list, index) => ({ index, first: list[0], last: list.at(-1) }))
    .filter((range) => range.first !== undefined && range.last !== undefined)
    .sort((a, b) => compareKeys(keyOf(a.first as T), keyOf(b.first as T)))
  for (let i = 1; i < order.length; i++) {
    const before = order[i - 1]?.last
    const next = order[i]?.first
    if (before === undefined || next === undefined || keyOf(before) >= keyOf(next)) {
      return undefined
    }
  }
  return order.map((range) => range.index)
}

function isSorted<T>(list: readonly T[], keyOf: (item: T) => string): boolean {
  for (let i = 1; i < list.length; i++) {
    if (keyOf(list[i - 1] as T) >= keyOf(list[i] as T)) return false
  }
  return true
}
