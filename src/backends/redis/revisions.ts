import { createHash } from 'node:crypto'
import { revision, ZERO_REVISION, type Revision } from '../../core/revision.js'

/** The SHA-1 of a value as lowercase hex, as Lua's `redis.sha1hex` computes it on the server. */
export function digest(value: Uint8Array): string {
  return createHash('sha1').update(value).digest('hex')
}

interface Seen {
  readonly revision: Revision
  readonly digest: string
}

/**
 * Redis keeps no revisions, so a store counts its own (see `createRedisStore`): one bigint clock
 * per store, and for each key the clock value at which this store last saw its value change,
 * with a digest of that value. A key seen again with the same value keeps its revision; a new
 * value gets the next count. The table is bounded: the least recently touched keys are
 * forgotten first (a forgotten key gets a fresh revision when next seen).
 */
export class RevisionClock {
  private current: Revision = ZERO_REVISION
  private readonly seen = new Map<string, Seen>()

  constructor(private readonly capacity: number) {}

  /** The latest count handed out (`0n` before any). */
  now(): Revision {
    return this.current
  }

  /** A new count, later than every one before. */
  tick(): Revision {
    this.current = revision(this.current + 1n)
    return this.current
  }

  /** The revision of `key` holding `value`: the one recorded when the value is unchanged, else a new one. */
  observe(key: string, value: Uint8Array): Revision {
    const hash = digest(value)
    const known = this.seen.get(key)
    if (known?.digest === hash) {
      this.touch(key, known)
      return known.revision
    }
    const next = this.tick()
    this.touch(key, { revision: next, digest: hash })
    return next
  }

  /** Records that `key` was written with `value` (or deleted, when undefined) at `at`. */
  record(key: string, value: Uint8Array | undefined, at: Revision): void {
    if (value === undefined) this.seen.delete(key)
    else this.touch(key, { revision: at, digest: digest(value) })
  }

  /**
   * The digest a revision condition compares against: the digest of the value `key` held when
   * this store gave it `at`. `undefined` when this store cannot tell (the key changed since, or
   * it never saw the key at that revision): such a condition fails.
   */
  digestAt(key: string, at: Revision): string | undefined {
    const known = this.seen.get(key)
    return known?.revision === at ? known.digest : undefined
  }

  private touch(key: string, entry: Seen): void {
    this.seen.delete(key)
    this.seen.set(key, entry)
    if (this.seen.size > this.capacity) {
      const oldest = this.seen.keys().next()
      if (oldest.done !== true) this.seen.delete(oldest.value)
    }
  }
}
