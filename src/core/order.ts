/**
 * The one key order of every listing and snapshot: JavaScript's string order (UTF-16 code
 * units), which is what `Array.prototype.sort()` gives with no comparator. Keys are compared
 * alone; a store never sorts by anything else.
 */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** {@link compareKeys} on the `key` of two items, for `items.sort(byKey)`. */
export function byKey(a: { readonly key: string }, b: { readonly key: string }): number {
  return compareKeys(a.key, b.key)
}
