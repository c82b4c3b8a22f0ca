import type { KeyValue } from '../../core/events.js'

/**
 * One source's part of a combined watch's view. It starts as the items of the source's
 * snapshot and is indexed by key only when a lookup first needs it (the first change, or a
 * relist), so a resync does not pay for an index it may never use.
 */
export class SourceView<V> {
  #items: readonly KeyValue<V>[]
  #index: Map<string, KeyValue<V>> | undefined

  constructor(items: readonly KeyValue<V>[] = []) {
    this.#items = items
  }

  /** The items, in snapshot order followed by the keys added since. */
  items(): readonly KeyValue<V>[] {
    return this.#index === undefined ? this.#items : Array.from(this.#index.values())
  }

  get(key: string): KeyValue<V> | undefined {
    return this.#indexed().get(key)
  }

  set(item: KeyValue<V>): void {
    this.#indexed().set(item.key, item)
  }

  delete(key: string): void {
    this.#indexed().delete(key)
  }

  /** The view as a map of key to item (built on first use). */
  map(): ReadonlyMap<string, KeyValue<V>> {
    return this.#indexed()
  }

  #indexed(): Map<string, KeyValue<V>> {
    if (this.#index === undefined) {
      this.#index = new Map()
      for (const item of this.#items) this.#index.set(item.key, item)
      this.#items = []
    }
    return this.#index
  }
}
