import { compareKeys } from '../../internal/order.js'

/**
 * Merges lists into one sorted by key, each key once: where lists share a key, the later list
 * wins (a higher layer). Each list is sorted first unless it already is (a store's listing and
 * snapshot normally are, so this is a linear merge).
 */
export function mergeByKey<T>(lists: readonly (readonly T[])[], keyOf: (item: T) => string): T[] {
  let merged: T[] = []
  for (const list of lists) {
    if (list.length === 0) continue
    const sorted = isSorted(list, keyOf)
      ? list
      : [...list].sort((a, b) => compareKeys(keyOf(a), keyOf(b)))
    merged = merged.length === 0 ? [...sorted] : mergeTwo(merged, sorted, keyOf)
  }
  return merged
}

function isSorted<T>(list: readonly T[], keyOf: (item: T) => string): boolean {
  for (let i = 1; i < list.length; i++) {
    if (keyOf(list[i - 1] as T) >= keyOf(list[i] as T)) return false
  }
  return true
}

/** Merges two sorted lists; on a shared key, the item of `upper` is kept. */
function mergeTwo<T>(lower: readonly T[], upper: readonly T[], keyOf: (item: T) => string): T[] {
  const out: T[] = []
  let i = 0
  let j = 0
  while (i < lower.length && j < upper.length) {
    const a = lower[i] as T
    const b = upper[j] as T
    const order = compareKeys(keyOf(a), keyOf(b))
    if (order < 0) {
      out.push(a)
      i++
    } else {
      out.push(b)
      j++
      if (order === 0) i++
    }
  }
  while (i < lower.length) out.push(lower[i++] as T)
  while (j < upper.length) out.push(upper[j++] as T)
  return out
}
