import { Observable, concatMap, defer, finalize, of, repeat, timer, type SchedulerLike } from 'rxjs'
import type { Change, KeyValue, SnapshotCause, StoreEvent } from '../../core/events.js'
import { revision } from '../../core/revision.js'
import { matchesAny } from '../../core/snapshot.js'
import { retryWithBackoff, type BackoffOptions } from '../../internal/backoff.js'
import { asDatasyncError, isFatalToWatch, type ErrorMapper } from '../../internal/errors.js'
import { byKey, compareKeys } from '../../internal/order.js'
import type { HealthPart } from '../../internal/store-health.js'
import type { Blocking } from './client.js'
import type { Listing, RawEntry } from './wire.js'

/** What one watch needs from the store. */
export interface WatchContext {
  /** A recursive listing of `root`, blocking from an index when given one. */
  readonly list: (root: string, blocking?: Blocking) => Observable<Listing>
  readonly waitMs: number
  readonly minQueryIntervalMs: number
  /** The pause before a failed query is tried again: `retryDelay` doubling up to `maxRetryDelay`. */
  readonly backoff: BackoffOptions
  readonly scheduler: SchedulerLike
  /** The store's error table: what ends the watch is decided on its mapping. */
  readonly mapError: ErrorMapper
  /** Where the watch reports: up on each answer, down on each failure it retries, gone at its end. */
  readonly health: HealthPart
}

/**
 * The prefixes a watch needs, without the ones another covers, and their longest common prefix:
 * the one recursive listing that holds them all. A single listing is what keeps a transaction
 * that spans two prefixes one event (P8) and the event revisions strictly increasing.
 */
export function watchRoot(prefixes: readonly string[]): {
  readonly root: string
  readonly prefixes: readonly string[]
} {
  const sorted = [...new Set(prefixes)].sort(compareKeys)
  const kept: string[] = []
  for (const prefix of sorted) {
    if (!kept.some((other) => prefix.startsWith(other))) kept.push(prefix)
  }
  let root = kept[0] ?? ''
  for (const prefix of kept) {
    let i = 0
    while (i < root.length && i < prefix.length && root[i] === prefix[i]) i++
    root = root.slice(0, i)
  }
  return { root, prefixes: kept }
}

/**
 * A watch of `prefixes` from Consul's blocking queries:
 *
 * - one recursive listing of the prefixes' common root at index I (no `?index`): a snapshot;
 * - then blocking queries from I (`?index=I&wait=`), each answering a whole listing at its own
 *   index J once something under the root changed; the listing is compared with the last one by
 *   each key's ModifyIndex and becomes one `changes` event at revision J with a change per key
 *   that is new, rewritten or gone (prev from the last listing);
 * - an index that goes backwards (a snapshot restore, a data loss, tombstones reaped) gives a
 *   fresh snapshot with cause `index-reset`; a failed query is retried with backoff and the next
 *   listing is a snapshot with cause `reconnect` (the first one stays `startup`);
 * - a query that brought no news (Consul's wait ran out, or only keys outside the prefixes changed)
 *   is followed by the next one no sooner than `minQueryIntervalMs` after it started; after news,
 *   the next query goes out at once, so that closely following writes are merged as little as
 *   the round trip allows.
 *
 * A listing shows the state at its index: writes that happened between two listings are merged
 * (a key written twice shows its last value, a key created and deleted in between shows
 * nothing), but every final value arrives, and prev is the value the watch showed before.
 *
 * ```
 * list:      L(I=5)--B(J=7)-------B(J=7, timeout)--B(J=9)--x(error)--L(I=12)--
 * watch:     S(5)----c(7)-----------------------------c(9)-------------S(12, reconnect)
 * ```
 */
export function watchListing(
  prefixes: readonly string[],
  context: WatchContext,
): Observable<StoreEvent<Uint8Array>> {
  return defer(() => {
    const { root, prefixes: covering } = watchRoot(prefixes)
    const state = new ListingState(covering, covering.length === 1 && covering[0] === root)
    const what = `watch '${root}'`
    let started = 0
    let quiet = false
    return defer(() => {
      started = context.scheduler.now()
      const blocking =
        state.index === undefined ? undefined : { index: state.index, waitMs: context.waitMs }
      return context.list(root, blocking)
    }).pipe(
      concatMap((listing) => {
        context.health.up()
        const events = state.apply(listing)
        quiet = events.length === 0
        return events
      }),
      // After news, ask again at once, synchronously: the next blocking query is on its way
      // before anyone who saw the news can write again, so closely following writes are merged as
      // little as the round trip allows. After an answer without news (Consul's wait ran out, or
      // only keys outside the prefixes changed), wait out the rest of the minimum interval.
      repeat({
        delay: () =>
          quiet
            ? timer(
                Math.max(0, context.minQueryIntervalMs - (context.scheduler.now() - started)),
                context.scheduler,
              )
            : of(0),
      }),
      // The count starts again with each event: after a failure the next answer is a listing
      // afresh, which is always a snapshot.
      retryWithBackoff({
        ...context.backoff,
        scheduler: context.scheduler,
        shouldRetry: (error) => !isFatalToWatch(context.mapError(error, what)),
        onRetry: (error) => {
          context.health.down(asDatasyncError(error))
          state.gap()
        },
      }),
      finalize(() => {
        context.health.gone()
      }),
    )
  })
}

interface Held {
  modifyIndex: number
  kv: KeyValue<Uint8Array>
  /** The listing step that last saw the key. */
  seen: number
}

/** The last listing of one watch, and how the next one differs from it. */
class ListingState {
  /** The index of the last listing; undefined: the next query lists afresh. */
  index: bigint | undefined
  private readonly held = new Map<string, Held>()
  /** The index of the last listing, kept across a gap to tell a reset. */
  private lastIndex: bigint | undefined
  private cause: SnapshotCause = 'startup'
  private step = 0

  constructor(
    private readonly prefixes: readonly string[],
    /** The root is the only prefix: every listed key matches. */
    private readonly exact: boolean,
  ) {}

  /** A query failed: the next listing starts afresh. */
  gap(): void {
    this.index = undefined
  }

  apply(listing: Listing): StoreEvent<Uint8Array>[] {
    const blocking = this.index !== undefined
    const last = this.lastIndex
    this.lastIndex = listing.index
    // Consul: never block on index 0 (it would answer at once, forever).
    this.index = listing.index > 0n ? listing.index : 1n
    if (last !== undefined && listing.index < last) {
      return [this.snapshot(listing, 'index-reset')]
    }
    if (!blocking) return [this.snapshot(listing, this.cause)]
    if (listing.index === last) return []
    const changes = this.diff(listing)
    if (changes.length === 0) return []
    return [{ type: 'changes', revision: revision(listing.index), changes }]
  }

  private matches(key: string): boolean {
    return this.exact || matchesAny(key, this.prefixes)
  }

  private snapshot(listing: Listing, cause: SnapshotCause): StoreEvent<Uint8Array> {
    this.held.clear()
    this.step++
    const items: KeyValue<Uint8Array>[] = []
    for (const entry of listing.entries) {
      if (!this.matches(entry.Key)) continue
      const kv = keyValueOf(entry)
      this.held.set(entry.Key, { modifyIndex: entry.ModifyIndex, kv, seen: this.step })
      items.push(kv)
    }
    items.sort(byKey)
    this.cause = 'reconnect'
    return { type: 'snapshot', revision: revision(listing.index), items, cause }
  }

  /**
   * The changes from the last listing to this one. Work beyond reading the listing is one index
   * comparison per key; values are copied only for keys that changed, and the held keys are
   * scanned for deletes only when the listing holds fewer of them than before.
   */
  private diff(listing: Listing): Change<Uint8Array>[] {
    const step = ++this.step
    const before = this.held.size
    let kept = 0
    const changes: Change<Uint8Array>[] = []
    for (const entry of listing.entries) {
      const old = this.held.get(entry.Key)
      if (old !== undefined) {
        kept++
        old.seen = step
        if (old.modifyIndex === entry.ModifyIndex) continue
        const kv = keyValueOf(entry)
        changes.push({
          op: 'put',
          key: kv.key,
          value: kv.value,
          prev: old.kv.value,
          revision: kv.revision,
        })
        old.modifyIndex = entry.ModifyIndex
        old.kv = kv
      } else if (this.matches(entry.Key)) {
        const kv = keyValueOf(entry)
        this.held.set(entry.Key, { modifyIndex: entry.ModifyIndex, kv, seen: step })
        changes.push({ op: 'put', key: kv.key, value: kv.value, revision: kv.revision })
      }
    }
    if (kept < before) {
      const at = revision(listing.index)
      for (const [key, old] of this.held) {
        if (old.seen === step) continue
        this.held.delete(key)
        changes.push({ op: 'delete', key, prev: old.kv.value, revision: at })
      }
    }
    return changes.sort(byRevisionThenKey)
  }
}

/** A listed entry as a KeyValue; the value is copied out of the client's pooled buffer. */
export function keyValueOf(entry: RawEntry): KeyValue<Uint8Array> {
  return {
    key: entry.Key,
    value: entry.Value === null ? new Uint8Array(0) : new Uint8Array(entry.Value),
    revision: revision(BigInt(entry.ModifyIndex)),
  }
}

function byRevisionThenKey(a: Change<unknown>, b: Change<unknown>): number {
  return a.revision < b.revision ? -1 : a.revision > b.revision ? 1 : byKey(a, b)
}
