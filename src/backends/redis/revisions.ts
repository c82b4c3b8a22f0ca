import { createHash } from 'node:crypto'
import { revision, ZERO_REVISION, type Revision } from '../../core/revision.js'

/** The SHA-1 of a value as lowercase hex, as Lua's `redis.sha1hex` computes it on the server. */
export function digest(value: Uint8Array): string {
  return createHash('sha1').update(value).digest('hex')
}

/**
 * What the clock knows of a key: the revision it gave the key's value, and that value: a small
 * one itself (the watches and consumers that saw it hold it anyway), whose digest is computed
 * only when a transaction's revision condition asks for it, not for every key a listing reads;
 * a large one by its digest only, so that the table never holds large values.
 */
interface Seen {
  readonly revision: Revision
  readonly value: Uint8Array | undefined
  digest: string | undefined
}

/** Values up to this size are kept as they are; larger ones by their digest. */
const KEEP_BYTES = 1024

function seen(revision: Revision, value: Uint8Array): Seen {
  return value.length <= KEEP_BYTES
    ? { revision, value, digest: undefined }
    : { revision, value: undefined, digest: digest(value) }
}

function holds(entry: Seen, value: Uint8Array): boolean {
  return entry.value !== undefined ? sameBytes(entry.value, value) : entry.digest === digest(value)
}

/**
 * Redis keeps no revisions, so a store counts its own (see `createRedisStore`): one bigint clock
 * per store, and for each key the clock value at which this store last saw its value change,
 * with that value. A key seen again with the same value keeps its revision; a new
 * value gets the next count. The table is bounded: the least recently touched keys are
 * forgotten first (a forgotten key gets a fresh revision when next seen).
 */
export class RevisionClock {
  private current: Revision = ZERO_REVISION
  private readonly seen = new Map<string, Seen>()
  /** Walks the table from its oldest key (see `add`). */
  private order: MapIterator<string> = this.seen.keys()

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

  /**
   * The revision of `key` holding `value`: the one recorded when the value is unchanged, else a
   * new one: `at` when given (a listing gives every value it finds new the one count it took
   * before it started), else the next count.
   */
  observe(key: string, value: Uint8Array, at?: Revision): Revision {
    const known = this.seen.get(key)
    if (known !== undefined && holds(known, value)) {
      this.touch(key, known)
      return known.revision
    }
    const next = at ?? this.tick()
    // A key not in the table goes to its end as it is (a listing adds every key it finds).
    if (known === undefined) this.add(key, seen(next, value))
    else this.touch(key, seen(next, value))
    return next
  }

  /** Records that `key` was written with `value` (or deleted, when undefined) at `at`. */
  record(key: string, value: Uint8Array | undefined, at: Revision): void {
    if (value === undefined) this.seen.delete(key)
    else this.touch(key, seen(at, value))
  }

  /**
   * The digest a revision condition compares against: the digest of the value `key` held when
   * this store gave it `at`. `undefined` when this store cannot tell (the key changed since, or
   * it never saw the key at that revision): such a condition fails.
   */
  digestAt(key: string, at: Revision): string | undefined {
    const known = this.seen.get(key)
    if (known?.revision !== at) return undefined
    known.digest ??= known.value && digest(known.value)
    return known.digest
  }

  private touch(key: string, entry: Seen): void {
    // Delete-then-set moves the key to the end (most recently touched); a new key goes there.
    this.seen.delete(key)
    this.add(key, entry)
  }

  /**
   * Sets a key that is not in the table (or was just deleted from it), forgetting the oldest.
   *
   * The oldest key is found with one iterator kept across calls, not a new `keys()` each time:
   * a Map keeps a deleted entry's slot until it is compacted, and a new iterator starts at the
   * first slot, so with the table full every eviction walked over all the slots evicted before
   * it (300k keys through a 100k table: 18 s instead of 0.3 s; issue 16). A Map iterator sees the
   * entries added after it was made and skips deleted ones, and every live entry is at or after
   * its position (an entry touched is deleted and added again at the end), so its next key is
   * always the least recently touched one; each slot is passed once, so evicting is O(1)
   * amortized.
   */
  private add(key: string, entry: Seen): void {
    this.seen.set(key, entry)
    if (this.seen.size <= this.capacity) return
    let oldest = this.order.next()
    if (oldest.done === true) {
      // Only an iterator that ran out (every key it passed was gone) ends; start a new one.
      this.order = this.seen.keys()
      oldest = this.order.next()
    }
    if (oldest.done !== true) this.seen.delete(oldest.value)
  }
}

/** Whether two values hold the same bytes. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
