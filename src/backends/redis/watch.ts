import {
  NEVER,
  catchError,
  concat,
  defer,
  finalize,
  of,
  tap,
  throwError,
  type Observable,
} from 'rxjs'
import type { StoreEvent } from '../../core/events.js'
import { retryWithBackoff } from '../../internal/backoff.js'
import { normalizePrefixes } from './keyspace.js'
import { SessionEnd, type WatchContext, type WatchState } from './context.js'
import { session } from './session.js'

/**
 * A watch of the keys under `prefixes`: a chain of sessions (`session.ts`). Each session
 * subscribes first, on a subscriber connection per master, to the keyspace events of the
 * prefixes and to the store's write messages, queueing what arrives; then it lists (SCAN + MGET
 * on every master, through a reader connection to the same server), emits the snapshot, and
 * turns the queue and everything after it into change events. A session ends at the first sign
 * that events may have been lost (a connection closed, a heartbeat unanswered, the Cluster's slot
 * map changed, a read failed); the next one starts after a backoff and its snapshot carries the
 * cause (`reconnect` or `watch-error`). Only errors fatal to a watch (authentication,
 * configuration: the kit's `isFatalToWatch`) end it.
 *
 * Ordering. A write message carries the exact values of one write, in order with the keyspace
 * events around it. A keyspace event alone (another client's write, an expiry, an eviction, a
 * rename) carries no value: the key is read afterwards. Reads go one batch at a time over one
 * connection per master, so each read sees the server later than the one before: read values
 * never go back in time. What a read cannot place is a write message that arrives while it runs
 * (the write may have happened before or after the read executed): after each read a PING on the
 * subscribers (answered after every message published before it) collects those, and a key with
 * such a message keeps that message's value rather than the read's. The snapshot is treated like
 * a read: what was queued before it is read again. On a Cluster the masters' streams are merged
 * so that each store's messages come in the order it made them (`arrivals.ts`).
 */
export function watchKeys(
  context: WatchContext,
  prefixes: readonly string[],
): Observable<StoreEvent<Uint8Array>> {
  return defer(() => {
    const state: WatchState = {
      prefixes: normalizePrefixes(prefixes),
      cause: 'startup',
      started: false,
    }
    // Nothing to watch: one empty snapshot, and nothing ever after.
    if (state.prefixes.length === 0) {
      return concat(
        of<StoreEvent<Uint8Array>>({
          type: 'snapshot',
          revision: context.clock.tick(),
          items: [],
          cause: 'startup',
        }),
        NEVER,
      )
    }
    const { settings, scheduler } = context
    const health = context.health.part()
    return defer(() => session(context, state, health)).pipe(
      catchError((raw: unknown) => throwError(() => SessionEnd.of(raw, context.mapError))),
      tap({
        error: (end: SessionEnd) => {
          health.down(end.error)
        },
      }),
      retryWithBackoff({
        firstMs: settings.reconnectDelayMs,
        maxMs: settings.maxReconnectDelayMs,
        scheduler,
        shouldRetry: (end) => !(end as SessionEnd).fatal,
        onRetry: (end) => {
          if (state.started) state.cause = (end as SessionEnd).cause
        },
      }),
      // A fatal end: the watch errors with the library's error.
      catchError((end: SessionEnd) => throwError(() => end.error)),
      finalize(() => {
        health.gone()
      }),
    )
  })
}
