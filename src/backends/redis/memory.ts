import { valuesEqual } from '../../core/equal.js'

/** A change a watch emits, before its revision is stamped on. */
export type Pending =
  | {
      readonly op: 'put'
      readonly key: string
      readonly value: Uint8Array
      readonly prev?: Uint8Array
    }
  | { readonly op: 'delete'; readonly key: string; readonly prev?: Uint8Array }

/**
 * What a watch session remembers of the values it reported, and so which values are changes
 * (`watchMemory`): `LeanMemory` (`lean-memory.ts`) by default, {@link ValueMemory} with `'values'`.
 * Units are numbered in the order they arrived (`seq`, see `arrivals.ts`).
 */
export interface WatchMemory {
  /** Whether the session records its changes in the store's revision table. */
  readonly records: boolean
  /**
   * The listing's values; every unit up to `until` arrived before the listing was done and is
   * read again after it.
   */
  listed(values: Map<string, Uint8Array>, until: number): void
  /** A write message (unit `seq`) wrote `value` (undefined: deleted) to `key`: the change. */
  written(key: string, value: Uint8Array | undefined, seq: number): Pending | undefined
  /**
   * `value` was read for `key` after its keyspace event (unit `seq`), and every unit up to
   * `until` has arrived: the change, if it is one.
   */
  read(key: string, value: Uint8Array | undefined, seq: number, until: number): Pending | undefined
  /**
   * Forgets what no unit still waiting can use: `pending()` gives the `seq` of the earliest one
   * (Infinity when none is); it is called only when something could be forgotten.
   */
  forget(pending: () => number): void
}

/**
 * `watchMemory: 'values'`: the value of every key as last emitted, the `prev` of its next change
 * and the no-op filter. A written value always counts (a put of the same value is still a put);
 * a read value only when it differs, since a read cannot tell a rewrite from an event already
 * seen.
 */
export class ValueMemory implements WatchMemory {
  readonly records = true
  #known = new Map<string, Uint8Array>()

  listed(values: Map<string, Uint8Array>): void {
    this.#known = values
  }

  written(key: string, value: Uint8Array | undefined): Pending | undefined {
    return this.#change(key, value, true)
  }

  read(key: string, value: Uint8Array | undefined): Pending | undefined {
    return this.#change(key, value, false)
  }

  forget(): void {
    // Every value is kept.
  }

  #change(key: string, value: Uint8Array | undefined, written: boolean): Pending | undefined {
    const prev = this.#known.get(key)
    if (value === undefined) {
      if (prev === undefined) return undefined
      this.#known.delete(key)
      return { op: 'delete', key, prev }
    }
    if (prev !== undefined && !written && valuesEqual(prev, value)) return undefined
    this.#known.set(key, value)
    return prev === undefined ? { op: 'put', key, value } : { op: 'put', key, value, prev }
  }
}
