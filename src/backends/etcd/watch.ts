import {
  EMPTY,
  NEVER,
  Observable,
  concat,
  defer,
  finalize,
  from,
  map,
  mergeMap,
  retry,
  throwError,
  timer,
  type SchedulerLike,
} from 'rxjs'
import type { Etcd3 } from 'etcd3'
import { DatasyncError, UnavailableError } from '../../core/errors.js'
import { EtcdWatchStreamEnded, castGrpcError, castGrpcErrorMessage } from './etcd3.js'
import type { Change, KeyValue, SnapshotCause, StoreEvent } from '../../core/events.js'
import { revision, ZERO_REVISION, type Revision } from '../../core/revision.js'
import { matchesAny } from '../../core/snapshot.js'
import type { WatchOptions } from '../../core/store.js'
import { backoffDelay, DEFAULT_JITTER } from '../../internal/backoff.js'
import { isFatalToWatch, type ErrorMapper, type Mapped } from '../../internal/errors.js'
import type { HealthPart } from '../../internal/store-health.js'
import { openWatchStream, type WatchStream } from './client.js'
import { NAME } from './errors.js'
import { hullOf, normalizePrefixes, type KeyRange } from './keys.js'
import type { WireEvent, WireWatchResponse } from './wire/decode.js'
import { encodeWatchCreate } from './wire/encode.js'

/** What a watch needs from its store. */
export interface WatchContext {
  readonly client: Etcd3
  readonly scheduler: SchedulerLike
  readonly endpoints: readonly string[]
  readonly dialTimeoutMs: number
  readonly reconnectIntervalMs: number
  readonly resyncAfterReconnect: boolean
  readonly allowDelayedStart: boolean
  /** Every key under the (normalized) prefixes, read at one revision. */
  list(prefixes: readonly string[]): Observable<{ revision: bigint; items: KeyValue<Uint8Array>[] }>
  /** The store's error table, without side effects (a cancel reason is read with it). */
  readonly map: ErrorMapper
  /**
   * Maps a raw error the watch met and applies what it means: a store-wide failure closes the
   * store, a connection fault marks `part` down.
   */
  fail(error: unknown, what: string, part: HealthPart): Mapped
  /** Whether the store ever reached etcd. */
  contacted(): boolean
  /** A new reporter of the store's health, for one watch: up with a live stream, gone at its end. */
  part(): HealthPart
}

/** The first pause after a broken stream; it doubles up to the reconnect interval. */
const FIRST_BACKOFF_MS = 50

/**
 * Watches every key under `prefixes`: a snapshot read at one revision R (paged), then a watch
 * from R + 1 with previous values, over the smallest key range holding every prefix (one
 * revision always arrives in one piece, so a transaction is one `changes` event); the client
 * keeps the changes under a prefix.
 *
 * When the stream breaks (member killed, network cut, member lost its leader), the store is
 * `degraded` and the watch resumes from the last revision it delivered + 1, on whichever member
 * answers: nothing lost, nothing twice, no snapshot. A new snapshot comes only when etcd no longer
 * has that history (`compacted`), or after every reconnection with `relistOnReconnect` (by
 * default the store's `resyncAfterReconnect`; cause `reconnect`). The pause between attempts
 * doubles from 50 ms up to the reconnect interval, each shortened at random by up to a fifth
 * (jitter), so many clients cut off together do not return together.
 *
 * With `options.after` the watch starts as if it had already delivered everything up to that
 * revision: no snapshot, a watch from `after` + 1. When etcd no longer holds that history
 * (compacted), or its current revision is below `after` (another cluster, or etcd's data was
 * wiped: the revision belongs to other data), it lists instead and the snapshot says `startup`.
 *
 * ```
 * watch(['a/']):  S(R)--c(R+1)--c--x(stream broke)....c(resumed)--c--...x....S(compacted)--c--
 * watch(['a/'], { after: R }):  --c(R+1)--c--   (or S(startup) when R cannot be resumed)
 * ```
 */
export function watchPrefixes(
  context: WatchContext,
  prefixes: readonly string[],
  options: WatchOptions = {},
): Observable<StoreEvent<Uint8Array>> {
  return defer(() => {
    const kept = normalizePrefixes(prefixes)
    if (kept.length === 0) {
      const empty: StoreEvent<Uint8Array> = {
        type: 'snapshot',
        revision: ZERO_REVISION,
        items: [],
        cause: 'startup',
      }
      return concat([empty], NEVER)
    }
    const what = `watch of ${kept.map((prefix) => JSON.stringify(prefix)).join(', ')}`
    const hull = hullOf(kept)
    const health = context.part()
    const backoff = {
      firstMs: FIRST_BACKOFF_MS,
      maxMs: context.reconnectIntervalMs,
      jitter: DEFAULT_JITTER,
    }
    const started = context.scheduler.now()
    /** The revision the watch delivered last: everything up to it is known. */
    let last: bigint | undefined = options.after
    let relist = options.after === undefined
    /** Resuming from `after` until etcd answered: its revision must not be below `after`. */
    let resuming = options.after !== undefined
    let cause: SnapshotCause = 'startup'
    let failures = 0
    /** Relist after each reconnection: the watch option, else the store's own setting. */
    const relistOnReconnect = options.relistOnReconnect ?? context.resyncAfterReconnect

    const snapshot = context.list(kept).pipe(
      map(({ revision: at, items }): StoreEvent<Uint8Array> => {
        last = at
        relist = false
        resuming = false
        return { type: 'snapshot', revision: revision(at), items, cause }
      }),
    )

    const onResponse = (response: WireWatchResponse): Observable<StoreEvent<Uint8Array>> => {
      if (response.created) {
        failures = 0
        health.up()
        if (resuming && options.after !== undefined) {
          resuming = false
          if (response.revision < options.after) {
            // Not the history `after` came from: nothing can be resumed, list as at a start.
            return throwError(() => new ForeignRevision())
          }
        }
        return EMPTY
      }
      if (response.events.length === 0) {
        // A progress notification: etcd sends it only to a watcher that has every event up to
        // the header's revision, so a later resume may start after it.
        const at = response.revision
        if (last === undefined || at > last) last = at
        return EMPTY
      }
      return from(batches(response.events, kept)).pipe(
        map((batch) => {
          last = batch.at
          return batch.event
        }),
        mergeMap((event) => (event === undefined ? EMPTY : [event])),
      )
    }

    const cycle = defer(() =>
      concat(
        relist ? snapshot : EMPTY,
        defer(() => watchStream(context, hull, (last ?? 0n) + 1n).pipe(mergeMap(onResponse))),
      ),
    )

    return cycle.pipe(
      retry({
        delay: (raw: unknown) => {
          if (raw instanceof ForeignRevision) {
            relist = true
            return timer(0, context.scheduler)
          }
          const mapped = context.fail(raw, what, health)
          const { error } = mapped
          if (mapped.scope === 'operation' && error.code === 'compacted') {
            // The revision to resume from is gone: relist, and the orchestrator diffs (P4). A
            // resume from `after` that never delivered anything starts as a fresh watch.
            relist = true
            cause = resuming || last === options.after ? 'startup' : 'compacted'
            resuming = false
            return timer(0, context.scheduler)
          }
          if (isFatalToWatch(mapped)) return throwError(() => error)
          if (
            !context.contacted() &&
            !context.allowDelayedStart &&
            context.scheduler.now() - started >= context.dialTimeoutMs
          ) {
            return throwError(
              () =>
                new UnavailableError(
                  NAME,
                  `cannot reach etcd at ${context.endpoints.join(', ')} within the dial timeout (${context.dialTimeoutMs} ms): ${error.message}; start etcd first, or set allowDelayedStart (allow-delayed-start) to wait for it`,
                  { cause: error },
                ),
            )
          }
          if (last !== undefined && relistOnReconnect && !relist) {
            relist = true
            cause = 'reconnect'
          }
          failures++
          return timer(backoffDelay(backoff, failures), context.scheduler)
        },
      }),
      finalize(() => {
        health.gone()
      }),
    )
  })
}

/** etcd's revision is below the `after` a watch was asked to resume from. */
class ForeignRevision extends Error {
  constructor() {
    super('the store revision is below the revision to resume after')
  }
}

interface Batch {
  /** The revision of the batch. */
  readonly at: bigint
  /** Its changes under the watched prefixes, if any. */
  readonly event: StoreEvent<Uint8Array> | undefined
}

/** Splits a response's events by revision: one batch per revision (per transaction). */
function batches(events: readonly WireEvent[], prefixes: readonly string[]): Batch[] {
  const result: Batch[] = []
  let text: bigint | undefined
  let at = ZERO_REVISION
  let changes: Change<Uint8Array>[] = []
  const flush = () => {
    if (text === undefined) return
    result.push({
      at,
      event: changes.length === 0 ? undefined : { type: 'changes', revision: at, changes },
    })
    changes = []
  }
  for (const event of events) {
    if (event.kv.revision !== text) {
      flush()
      text = event.kv.revision
      // Checked once per revision: every change of a transaction shares it.
      at = revision(text)
    }
    const key = event.kv.key
    if (matchesAny(key, prefixes)) changes.push(toChange(event, key, at))
  }
  flush()
  return result
}

function toChange(event: WireEvent, key: string, at: Revision): Change<Uint8Array> {
  const prev = event.prevKv?.value
  if (event.type === 'delete') {
    return prev === undefined
      ? { op: 'delete', key, revision: at }
      : { op: 'delete', key, prev, revision: at }
  }
  const value = event.kv.value
  return prev === undefined
    ? { op: 'put', key, value, revision: at }
    : { op: 'put', key, value, prev, revision: at }
}

/**
 * One watch stream over `range` from `start`: emits the `created` response, then whole
 * responses (fragments joined). Errors when the stream breaks or ends, when it is not created
 * within the dial timeout, and when etcd cancels the watch (`compacted` when the start revision
 * is gone). Unsubscribing cancels the stream, which ends the watch on the server.
 */
function watchStream(
  context: WatchContext,
  range: KeyRange,
  start: bigint,
): Observable<WireWatchResponse> {
  return new Observable<WireWatchResponse>((subscriber) => {
    let stream: WatchStream | undefined
    let done = false
    let fragments: WireEvent[] = []
    const fail = (error: unknown) => {
      if (done) return
      done = true
      subscriber.error(error)
    }
    const creation = timer(context.dialTimeoutMs, context.scheduler).subscribe(() => {
      fail(
        new DatasyncError(
          'timeout',
          `${NAME}: no member of ${context.endpoints.join(', ')} created the watch within the dial timeout (${context.dialTimeoutMs} ms)`,
        ),
      )
    })

    const onData = (response: WireWatchResponse) => {
      if (done) return
      const compactRevision = response.compactRevision
      if (compactRevision > 0n) {
        fail(
          new DatasyncError(
            'compacted',
            `${NAME}: the history from revision ${start} was compacted (up to ${compactRevision})`,
          ),
        )
        return
      }
      if (response.canceled) {
        const reason = response.cancelReason || 'the watch was canceled by the server'
        const cause = castGrpcErrorMessage(reason)
        const mapped = context.map(cause, 'watch')
        // An unknown reason is worth another try; only what retrying cannot fix ends the watch.
        fail(
          mapped.error.code === 'auth' || mapped.error.code === 'config'
            ? cause
            : new UnavailableError(NAME, `etcd canceled the watch: ${reason}`, { cause }),
        )
        return
      }
      if (response.created) {
        creation.unsubscribe()
        subscriber.next(response)
        return
      }
      if (response.fragment) {
        fragments.push(...response.events)
        return
      }
      if (fragments.length > 0) {
        response = { ...response, events: [...fragments, ...response.events] }
        fragments = []
      }
      subscriber.next(response)
    }

    openWatchStream(context.client).then(
      (opened) => {
        if (done || subscriber.closed) {
          close(opened)
          return
        }
        stream = opened
        opened.on('data', onData)
        opened.on('error', (error: Error) => {
          fail(castGrpcError(error))
        })
        opened.on('end', () => {
          fail(new EtcdWatchStreamEnded())
        })
        opened.write(
          encodeWatchCreate({
            key: range.start,
            rangeEnd: range.end,
            startRevision: start,
            prevKv: true,
            progressNotify: true,
            fragment: true,
          }),
        )
      },
      (error: unknown) => {
        fail(error)
      },
    )

    return () => {
      done = true
      creation.unsubscribe()
      if (stream) close(stream)
    }
  })
}

/**
 * Ends a watch stream: half-close first (so etcd3 does not count the cancel as a member
 * failure), then cancel, which resets the HTTP/2 stream and makes etcd drop its watchers.
 */
function close(stream: WatchStream): void {
  stream.on('error', () => undefined)
  try {
    stream.end()
  } finally {
    stream.cancel()
  }
}
