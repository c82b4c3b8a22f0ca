import {
  Observable,
  defer,
  finalize,
  mergeMap,
  retry,
  throwError,
  timer,
  type SchedulerLike,
} from 'rxjs'
import type { Change, KeyValue, SnapshotCause, StoreEvent } from '../../core/events.js'
import { revision, type Revision } from '../../core/revision.js'
import { matchesAny } from '../../core/snapshot.js'
import type { WatchOptions } from '../../core/store.js'
import { backoffDelay, type BackoffOptions } from '../../internal/backoff.js'
import { asDatasyncError, isFatalToWatch, type ErrorMapper } from '../../internal/errors.js'
import { byKey } from '../../internal/order.js'
import type { HealthPart } from '../../internal/store-health.js'
import { StartSet, type FeedEvent, type FeedStart } from './feed.js'
import { decodeKey, filterFor, watchRoot } from './keys.js'
import { concatSteps } from './steps.js'

/** The bucket's stream bounds: its first and last sequence now. */
export interface StreamBounds {
  readonly first: bigint
  readonly last: bigint
}

/** What one watch needs from the store. */
export interface WatchContext {
  /** A consumer of the bucket from `start`, on the subject filter. */
  readonly feed: (filter: string, start: FeedStart) => Observable<FeedEvent>
  /** The stream's bounds now. */
  readonly bounds: () => Observable<StreamBounds>
  /** After this long broken, a watch lists afresh instead of resuming. */
  readonly resumeWithinMs: number
  readonly backoff: BackoffOptions
  readonly scheduler: SchedulerLike
  readonly mapError: ErrorMapper
  /** Up when a consumer is made, down on each failure the watch retries, gone at its end. */
  readonly health: HealthPart
}

/**
 * A watch of `prefixes` over the bucket's stream (docs/design.md §3):
 *
 * - snapshot: the stream's last sequence L is read, then a consumer delivers the last message of
 *   every key under the prefixes' common root (`DeliverLastPerSubject`); the first `pending` of
 *   them (the count the server gave when it made the consumer) are the snapshot, at revision
 *   max(L, the last one's sequence): every later message of those keys has a greater sequence;
 * - deltas: the same consumer goes on with every later message, one `changes` event each (a put,
 *   or a delete for a `DEL` or `PURGE` marker), revision = stream sequence, prev from the watch's
 *   own view (nats-server 2.9 does not send it);
 * - a broken consumer (connection lost, a skipped delivery, heartbeats missed) resumes on a new
 *   consumer from the last revision + 1, with no snapshot, while the stream still holds that
 *   history (its first sequence is at most the last revision + 1) and the watch broke less than
 *   `resumeWithin` ago; otherwise it lists afresh: a snapshot with cause `compacted` (or
 *   `index-reset` when the stream is behind the last revision: the bucket was recreated), which
 *   the orchestrator diffs (deletes carry the last value);
 * - with `options.after` it starts as if it had delivered everything up to it: no snapshot when
 *   the stream still holds the history after it, else a snapshot with cause `startup`;
 * - with `options.relistOnReconnect` a broken consumer lists afresh instead of resuming (a
 *   snapshot with cause `reconnect`).
 *
 * ```
 * watch(['a/']):  S(R)--c(R+1)--c--x(consumer lost)--c(resumed)--x......S(compacted)--c--
 * ```
 */
export function watchBucket(
  context: WatchContext,
  prefixes: readonly string[],
  options: WatchOptions = {},
): Observable<StoreEvent<Uint8Array>> {
  return defer(() => {
    const { root, prefixes: kept } = watchRoot(prefixes)
    const filter = filterFor(root)
    const exact = filter.exact && kept.length === 1
    const matches = (key: string) => exact || matchesAny(key, kept)
    const what = `watch of ${kept.map((prefix) => JSON.stringify(prefix)).join(', ')}`
    /** The watch's view: every key it delivered, with its value (the source of prev). */
    let held = new Map<string, KeyValue<Uint8Array>>()
    /** The view is whole (a snapshot was taken): a delete of an unknown key is no news. */
    let whole = false
    /** Everything up to this revision was delivered. */
    let last: bigint | undefined = options.after
    let brokeAt: number | undefined
    let failures = 0

    const change = (seq: bigint, key: string, op: 'put' | 'delete', value: Uint8Array) => {
      // A stream sequence: a non-negative bigint (see the feed).
      const at = seq as Revision
      const prev = held.get(key)?.value
      if (op === 'put') {
        held.set(key, { key, value, revision: at })
        const put: Change<Uint8Array> =
          prev === undefined
            ? { op: 'put', key, value, revision: at }
            : { op: 'put', key, value, prev, revision: at }
        return put
      }
      if (prev === undefined && whole) return undefined
      held.delete(key)
      const removed: Change<Uint8Array> =
        prev === undefined
          ? { op: 'delete', key, revision: at }
          : { op: 'delete', key, prev, revision: at }
      return removed
    }

    /** Each message after the snapshot: a `changes` event, or nothing (outside the prefixes). */
    const live = (event: FeedEvent): StoreEvent<Uint8Array>[] => {
      if (event.type !== 'message') return []
      if (last !== undefined && event.seq <= last) return []
      last = event.seq
      const key = decodeKey(event.natsKey)
      if (!matches(key)) return []
      const one = change(event.seq, key, event.op, event.value)
      return one === undefined ? [] : [{ type: 'changes', revision: one.revision, changes: [one] }]
    }

    const started = () => {
      failures = 0
      brokeAt = undefined
      context.health.up()
    }

    const snapshot = (cause: SnapshotCause) =>
      context.bounds().pipe(
        mergeMap((bounds) => {
          let expected = -1
          const start = new StartSet()
          let at = bounds.last
          const items = new Map<string, KeyValue<Uint8Array>>()
          const done = () => {
            expected = -2
            // The snapshot's map is the view from now on (no copy of 100k entries).
            held = items
            whole = true
            last = at
            const sorted = Array.from(items.values()).sort(byKey)
            return { type: 'snapshot', revision: revision(at), items: sorted, cause } as const
          }
          return context.feed(filter.subject, { from: 'last-per-subject' }).pipe(
            concatSteps((event): StoreEvent<Uint8Array>[] | Observable<StoreEvent<Uint8Array>> => {
              if (event.type === 'created') {
                started()
                expected = event.pending
                return expected === 0 ? [done()] : []
              }
              if (expected < 0) return live(event)
              // Idle: the consumer has nothing more now (the last messages of the start set
              // were removed, by a purge or an age limit, before it delivered them).
              if (event.type === 'idle') return [done()]
              const { fresh, complete, uncertain } = start.take(event)
              if (fresh) {
                if (event.seq > at) at = event.seq
                const key = decodeKey(event.natsKey)
                if (matches(key)) {
                  if (event.op === 'put')
                    items.set(key, { key, value: event.value, revision: event.seq as Revision })
                  else items.delete(key)
                }
              }
              if (!uncertain) return complete ? [done()] : []
              // Done if the stream holds nothing newer (see StartSet).
              return context
                .bounds()
                .pipe(
                  mergeMap((now) => (now.last <= start.highest && expected !== -2 ? [done()] : [])),
                )
            }),
          )
        }),
      )

    const resume = (from: bigint) =>
      context.feed(filter.subject, { from: 'sequence', seq: from + 1n }).pipe(
        concatSteps((event) => {
          if (event.type === 'created') {
            started()
            return []
          }
          return live(event)
        }),
      )

    const cycle = defer((): Observable<StoreEvent<Uint8Array>> => {
      const from = last
      if (from === undefined) return snapshot('startup')
      return context.bounds().pipe(
        mergeMap((bounds) => {
          const fresh = !whole
          const stale =
            brokeAt !== undefined && context.scheduler.now() - brokeAt > context.resumeWithinMs
          if (bounds.last < from) return snapshot(fresh ? 'startup' : 'index-reset')
          if (bounds.first > from + 1n || stale) return snapshot(fresh ? 'startup' : 'compacted')
          // A reconnection, and the caller asked for a listing after each one.
          if (brokeAt !== undefined && options.relistOnReconnect === true) {
            return snapshot('reconnect')
          }
          return resume(from)
        }),
      )
    })

    return cycle.pipe(
      retry({
        delay: (raw: unknown) => {
          const mapped = context.mapError(raw, what)
          if (isFatalToWatch(mapped)) return throwError(() => mapped.error)
          context.health.down(asDatasyncError(mapped.error))
          brokeAt ??= context.scheduler.now()
          failures++
          return timer(backoffDelay(context.backoff, failures), context.scheduler)
        },
      }),
      finalize(() => {
        context.health.gone()
      }),
    )
  })
}

/** An empty watch: no prefixes, nothing ever changes. */
export const NOTHING_WATCHED: StoreEvent<Uint8Array> = Object.freeze({
  type: 'snapshot',
  revision: revision(0n),
  items: [],
  cause: 'startup',
})
