/**
 * The store's history as the chaos writer made it. The writer is the only writer of its keys and
 * runs one operation at a time, so the order it issues writes in is their commit order per key.
 * Every value is unique (`<schedule>-<n>`), so a delivered value names the one write that made it.
 *
 * Every write is recorded before it is issued, as one that may happen: a consumer may or may not
 * see it (it may fail, time out during a fault, or be coalesced away). A transaction whose
 * conditions failed is cancelled. Deletes the writer cannot time exactly (a TTL's expiry, the
 * data a restarted Redis lost) are entries recorded when their cause was: a key written once
 * (TTL keys are) may lose its value at any later time.
 */

/** One entry of one key's history. */
export type Entry =
  | { readonly kind: 'put'; readonly value: string; readonly why: string; cancelled?: boolean }
  | { readonly kind: 'del'; readonly why: string; cancelled?: boolean }

/** What the checker needs to know of a key's history. */
export interface HistoryView {
  /** The entries of `key` in commit order. */
  entries(key: string): readonly Entry[]
}

export class History implements HistoryView {
  private readonly keys = new Map<string, Entry[]>()
  /** Every write in issue order, for the description of a failing schedule. */
  readonly log: string[] = []

  entries(key: string): readonly Entry[] {
    return this.keys.get(key) ?? []
  }

  /** Every key ever written. */
  known(): string[] {
    return [...this.keys.keys()]
  }

  private push(key: string, entry: Entry): Entry {
    let list = this.keys.get(key)
    if (list === undefined) this.keys.set(key, (list = []))
    list.push(entry)
    return entry
  }

  /**
   * Records a write before it is issued (a consumer may see it before the writer hears back);
   * returns its entries, to cancel when the store says it did not happen (a failed condition).
   */
  put(key: string, value: string, why = 'put'): Entry[] {
    this.log.push(`${why} ${key}=${value}`)
    return [this.push(key, { kind: 'put', value, why })]
  }

  del(key: string, why = 'delete'): Entry[] {
    this.log.push(`${why} ${key}`)
    return [this.push(key, { kind: 'del', why })]
  }

  /** A delete of every key under `prefix` the writer ever wrote. */
  delPrefix(prefix: string, why = 'prefix delete'): Entry[] {
    this.log.push(`${why} ${prefix}*`)
    return this.known()
      .filter((key) => key.startsWith(prefix))
      .map((key) => this.push(key, { kind: 'del', why }))
  }
}

/** Where `value` was written in `entries` (its index), or -1. Values are unique per key. */
export function indexOfPut(entries: readonly Entry[], value: string): number {
  return entries.findIndex(
    (entry) => entry.kind === 'put' && entry.value === value && entry.cancelled !== true,
  )
}

/** The first delete after index `after`, or -1. */
export function nextDelete(entries: readonly Entry[], after: number): number {
  for (let i = after + 1; i < entries.length; i++)
    if (entries[i]!.kind === 'del' && entries[i]!.cancelled !== true) return i
  return -1
}
