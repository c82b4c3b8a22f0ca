import { revision, ZERO_REVISION, type Revision } from '../../core/revision.js'

/** What the clock knows of a key: the source and source revision of the version it last saw. */
interface Seen {
  readonly source: number
  at: Revision
  readonly revision: Revision
}

/**
 * A combined store's own revisions. Sources count revisions each their own way (etcd's cluster
 * revision, Redis's and FileDB's own counters), so the combined store counts its own: one bigint
 * clock per store, and for each key the version (source and source revision) this store last
 * saw with the count it gave that version. The same version seen again (by a `get`, a `list` or
 * another watch) keeps its count; a new version gets a later one. A delete forgets the key.
 *
 * That table is what maps a revision condition back to the source: `{ key, revision }` holds in
 * the source when the key still has the version the count was given to.
 */
export class CombinedClock {
  #now: Revision = ZERO_REVISION
  readonly #seen = new Map<string, Seen>()

  /** The latest count handed out (`0n` before any). */
  now(): Revision {
    return this.#now
  }

  /** A new count, later than every one before. */
  tick(): Revision {
    this.#now = revision(this.#now + 1n)
    return this.#now
  }

  /**
   * The combined revision of `key` in the version `source` holds at source revision `at`: the
   * recorded one when this is the version last seen, else `next()` (a batch's one count), recorded.
   */
  observe(key: string, source: number, at: Revision, next: () => Revision): Revision {
    const seen = this.#seen.get(key)
    if (seen !== undefined && seen.source === source && seen.at === at) return seen.revision
    const count = next()
    this.#seen.set(key, { source, at, revision: count })
    return count
  }

  /**
   * The source rewrote `key` with the same value (a relist found it at another source revision):
   * the version keeps its combined revision, and conditions on it map to the new source revision.
   */
  carry(key: string, source: number, from: Revision, to: Revision): void {
    const seen = this.#seen.get(key)
    if (seen !== undefined && seen.source === source && seen.at === from) seen.at = to
  }

  /** The key was deleted. */
  forget(key: string): void {
    this.#seen.delete(key)
  }

  /**
   * The source revision a condition `{ key, revision }` stands for in `source`: `0n` for the
   * zero revision (a missing key), the version's source revision when `revision` is the count
   * this store gave the version it last saw of `key` in `source`, and `undefined` otherwise (the
   * key changed since, or its value comes from another source): the condition cannot hold.
   */
  sourceRevision(key: string, source: number, revision: Revision): Revision | undefined {
    if (revision === ZERO_REVISION) return ZERO_REVISION
    const seen = this.#seen.get(key)
    return seen !== undefined && seen.source === source && seen.revision === revision
      ? seen.at
      : undefined
  }
}

/** A lazily taken count: the first call ticks `clock`, later calls return the same count. */
export function stamp(clock: CombinedClock): () => Revision {
  let taken: Revision | undefined
  return () => (taken ??= clock.tick())
}
