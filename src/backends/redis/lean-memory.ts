import { valuesEqual } from '../../core/equal.js'
import type { Pending, WatchMemory } from './memory.js'

/**
 * `watchMemory: 'lean'`: no value per key. A read cannot tell a write it has not seen from one
 * it saw already, so the no-op filter needs the value last reported, but only while a unit may
 * still be pending that arrived before that value was read: the values of the listing until the
 * units that arrived during it are read again (`#listed`, up to `#listedUntil`), and each value
 * read or written since until the units that arrived before its barrier are turned into changes
 * (`#recent`). Then they are forgotten. Its changes carry no `prev`.
 */
export class LeanMemory implements WatchMemory {
  readonly records = false
  #listed: Map<string, Uint8Array> | undefined
  #listedUntil = 0
  /** A value reported for a key, and the last unit it settles (arrived before it was known). */
  readonly #recent = new Map<string, { readonly value: Uint8Array | undefined; until: number }>()

  /** How many values it holds now (for tests and diagnostics). */
  get size(): number {
    return (this.#listed?.size ?? 0) + this.#recent.size
  }

  listed(values: Map<string, Uint8Array>, until: number): void {
    this.#listed = values
    this.#listedUntil = until
    this.#recent.clear()
  }

  /** A written value always counts; a read after it compares with it, not an older one. */
  written(key: string, value: Uint8Array | undefined, seq: number): Pending {
    const until = Math.max(this.#recent.get(key)?.until ?? 0, seq)
    this.#recent.set(key, { value, until })
    return change(key, value)
  }

  /**
   * A read value is no change when it is the value reported already for a unit that may
   * predate it; it is recorded either way. A unit after the last read's barrier is a new write:
   * its value is reported even when it equals the last one (a rewrite, as etcd reports it).
   */
  read(
    key: string,
    value: Uint8Array | undefined,
    seq: number,
    until: number,
  ): Pending | undefined {
    const last = this.#recent.get(key)
    let reported: { readonly value: Uint8Array | undefined } | undefined
    if (last !== undefined) {
      if (seq <= last.until) reported = last
    } else if (this.#listed !== undefined && seq <= this.#listedUntil) {
      reported = { value: this.#listed.get(key) }
    }
    this.#recent.set(key, { value, until })
    const same =
      reported !== undefined &&
      (reported.value === undefined || value === undefined
        ? reported.value === value
        : valuesEqual(reported.value, value))
    return same ? undefined : change(key, value)
  }

  forget(pending: () => number): void {
    if (this.#listed === undefined && this.#recent.size === 0) return
    const earliest = pending()
    if (this.#listed !== undefined && this.#listedUntil < earliest) this.#listed = undefined
    for (const [key, entry] of this.#recent) if (entry.until < earliest) this.#recent.delete(key)
  }
}

function change(key: string, value: Uint8Array | undefined): Pending {
  return value === undefined ? { op: 'delete', key } : { op: 'put', key, value }
}
