import type pg from 'pg'
import {
  EMPTY,
  Observable,
  concat,
  defer,
  expand,
  finalize,
  from,
  map,
  merge,
  mergeMap,
  of,
  retry,
  throwError,
  timer,
  type SchedulerLike,
} from 'rxjs'
import { DatasyncError } from '../../core/errors.js'
import type { Change, KeyValue, SnapshotCause, StoreEvent } from '../../core/events.js'
import { revision, type Revision } from '../../core/revision.js'
import type { WatchOptions } from '../../core/store.js'
import { backoffDelay } from '../../internal/backoff.js'
import { isFatalToWatch, type Mapped } from '../../internal/errors.js'
import type { HealthPart } from '../../internal/store-health.js'
import { NAME } from './errors.js'
import type { TableName } from './options.js'
import { RAW_TYPES, prefixEnd, revisionOf } from './sql.js'

/** What a watch needs from its store. */
export interface WatchContext {
  readonly table: TableName
  readonly scheduler: SchedulerLike
  readonly pollIntervalMs: number
  readonly reconnectIntervalMs: number
  /** Relist after each reconnection unless the watch says otherwise (`relistOnReconnect`). */
  readonly resyncAfterReconnect: boolean
  /** Opens a dedicated connection for LISTEN (the schema ensured). */
  listener(): Promise<pg.Client>
  /**
   * The changes under the watched prefixes after revision `from`, at most `window` revisions,
   * one `changes` event per revision, read in one statement with the head and compaction point.
   */
  changes(prefixes: readonly string[], from: bigint, window: number): Observable<LogRead>
  /** The snapshot of the prefixes at one revision. */
  snapshot(prefixes: readonly string[]): Observable<{ head: bigint; items: KeyValue<Uint8Array>[] }>
  fail(raw: unknown, what: string, part: HealthPart): Mapped
  part(): HealthPart
}

/** How many revisions one read of the log covers at most. */
const WINDOW = 1000
const FIRST_BACKOFF_MS = 50

/** One read of a log. */
export interface LogRead {
  /** The log's current revision. */
  readonly head: bigint
  /** Revisions up to this one are compacted. */
  readonly compacted: bigint
  /** The changes found, one event per revision, in order. */
  readonly events: StoreEvent<Uint8Array>[]
  /** A revision at which the watched rows must be read afresh (a TRUNCATE), if one was met. */
  readonly rescan?: bigint
}

/**
 * One row of the key-value log as the watch reads it (`rowMode: 'array'`, {@link RAW_TYPES}):
 * head, compaction point, revision, key, deleted (`t`/`f`), value, prev; the last five null
 * when the read found no change.
 */
export type LogRow = [
  head: string,
  compacted: string,
  revision: string | null,
  key: string | null,
  deleted: string | null,
  value: Uint8Array | null,
  prev: Uint8Array | null,
]

/** One read: the events it found, and whether the log holds more after it. */
interface Pass {
  readonly events: StoreEvent<Uint8Array>[]
  readonly more: boolean
}

/**
 * Watches the keys under `prefixes`: a snapshot at revision R (unless resuming `after`), then
 * the log rows after the last revision delivered, read whenever a NOTIFY arrives on the table's
 * channel, every `pollInterval` anyway, and at once after each (re)connection. Reads never
 * depend on the notification itself (it only wakes the watch), so a lost NOTIFY or connection
 * loses nothing: the next read starts after the last revision delivered. Revisions are committed
 * in order (writes.ts), so a read never passes a revision that commits later.
 *
 * When the compaction point is past the last revision delivered, the watch relists (a snapshot
 * with cause `compacted`); with `options.relistOnReconnect` (by default the store's
 * `resyncAfterReconnect`) it relists after every reconnection (cause `reconnect`).
 */
export function watchLog(
  context: WatchContext,
  prefixes: readonly string[],
  options: WatchOptions = {},
): Observable<StoreEvent<Uint8Array>> {
  return defer(() => {
    const { after } = options
    const relistOnReconnect = options.relistOnReconnect ?? context.resyncAfterReconnect
    const what = `watch of ${prefixes.map((prefix) => JSON.stringify(prefix)).join(', ')}`
    const health = context.part()
    let last: bigint | undefined = after
    let relist = after === undefined
    let cause: SnapshotCause = 'startup'
    let failures = 0

    const snapshot$ = context.snapshot(prefixes).pipe(
      map(({ head, items }): Pass => {
        last = head
        relist = false
        return {
          events: [{ type: 'snapshot', revision: revision(head), items, cause }],
          more: false,
        }
      }),
    )

    const changes$ = defer(() => {
      const from = last ?? 0n
      return context.changes(prefixes, from, WINDOW).pipe(
        map((read): Pass => {
          if (read.compacted > from || from > read.head) {
            // The history after `from` is gone (or the log is not the one we knew): relist.
            relist = true
            cause = read.compacted > from ? 'compacted' : 'startup'
            return { events: [], more: true }
          }
          const rescan = read.rescan
          if (rescan !== undefined) {
            // The changes before it are delivered; from it on, a fresh snapshot says it all.
            relist = true
            cause = 'rescan'
            return { events: read.events.filter((event) => event.revision < rescan), more: true }
          }
          const upTo = read.head < from + BigInt(WINDOW) ? read.head : from + BigInt(WINDOW)
          last = upTo
          return { events: read.events, more: upTo < read.head }
        }),
      )
    })

    const pass$ = defer(() => (relist ? snapshot$ : changes$))
    /** Reads until caught up with the log. */
    const drain$ = pass$.pipe(expand((pass) => (pass.more ? pass$ : EMPTY)))

    // The first listing need not wait for the LISTEN connection: it runs while that connects,
    // and the read that follows 'connected' brings whatever committed in between. (A relist
    // after a failure waits for the connection, as every read after one does.)
    const wakes$ = defer(() =>
      last === undefined ? concat(of('start' as const), connected(context)) : connected(context),
    )
    const cycle$ = wakes$.pipe(
      wakeOnce((wake) =>
        drain$.pipe(
          mergeMap((pass) => {
            // The server answered (a first listing, or a read on the LISTEN connection).
            if (wake !== 'notified' && wake !== 'poll') {
              failures = 0
              health.up()
            }
            return from(pass.events)
          }),
        ),
      ),
    )

    return cycle$.pipe(
      retry({
        delay: (raw: unknown) => {
          const mapped = context.fail(raw, what, health)
          if (isFatalToWatch(mapped)) return throwError(() => mapped.error)
          if (last !== undefined && relistOnReconnect && !relist) {
            relist = true
            cause = 'reconnect'
          }
          failures++
          return timer(
            backoffDelay(
              { firstMs: FIRST_BACKOFF_MS, maxMs: context.reconnectIntervalMs },
              failures,
            ),
            context.scheduler,
          )
        },
      }),
      finalize(() => {
        health.gone()
      }),
    )
  })
}

/**
 * The wake-ups of one connection: `connected` once LISTEN is in place, `notified` on each
 * NOTIFY, `poll` every poll interval. Errors when the connection is lost; unsubscribing ends it.
 */
function connected(context: WatchContext): Observable<'connected' | 'notified' | 'poll'> {
  const listen$ = new Observable<'connected' | 'notified'>((subscriber) => {
    let client: pg.Client | undefined
    let done = false
    const fail = (error: unknown) => {
      if (done) return
      done = true
      subscriber.error(error)
    }
    context.listener().then(
      async (opened) => {
        client = opened
        if (subscriber.closed) {
          await opened.end().catch(() => undefined)
          return
        }
        opened.on('error', fail)
        opened.on('end', () => {
          fail(new DatasyncError('unavailable', `${NAME}: the watch's connection ended`))
        })
        opened.on('notification', () => {
          if (!done) subscriber.next('notified')
        })
        try {
          await opened.query(`LISTEN "${context.table.channel}"`)
          if (!done) subscriber.next('connected')
        } catch (error) {
          fail(error)
        }
      },
      (error: unknown) => {
        fail(error)
      },
    )
    return () => {
      done = true
      const opened = client
      if (opened) {
        opened.removeAllListeners('notification')
        opened.on('error', () => undefined)
        void opened.end().catch(() => undefined)
      }
    }
  })
  const poll$ = timer(context.pollIntervalMs, context.pollIntervalMs, context.scheduler).pipe(
    map(() => 'poll' as const),
  )
  return merge(listen$, poll$)
}

/**
 * Runs `work` for each wake-up, one at a time: a wake-up that comes while `work` runs makes it
 * run once more afterwards (several such collapse into one), so no wake-up is lost and reads
 * never overlap. Errors of either side end the stream.
 */
function wakeOnce<W, T>(work: (wake: W) => Observable<T>) {
  return (wakes: Observable<W>): Observable<T> =>
    new Observable<T>((subscriber) => {
      let running = false
      let pending: W | undefined
      let hasPending = false
      const start = (wake: W) => {
        running = true
        subscriber.add(
          work(wake).subscribe({
            next: (value) => {
              subscriber.next(value)
            },
            error: (error: unknown) => {
              subscriber.error(error)
            },
            complete: () => {
              running = false
              if (hasPending) {
                hasPending = false
                start(pending as W)
              }
            },
          }),
        )
      }
      subscriber.add(
        wakes.subscribe({
          next: (wake) => {
            if (running) {
              // 'connected' must not be lost behind a 'notified' that came first.
              if (!hasPending || wake === ('connected' as W)) pending = wake
              hasPending = true
            } else start(wake)
          },
          error: (error: unknown) => {
            subscriber.error(error)
          },
        }),
      )
    })
}

/**
 * Reads the key-value log after `from` (at most `window` revisions) under the prefixes, with the
 * head and the compaction point, in one statement (one snapshot). A change's previous value is
 * the row its revision superseded.
 */
export async function readKvChanges(
  client: pg.ClientBase,
  table: TableName,
  prefixes: readonly string[],
  from: bigint,
  window: number,
): Promise<LogRead> {
  const result = await client.query<LogRow>({
    text: `SELECT m.revision AS head, m.compacted, c.revision, c.key, c.deleted, c.value,
       CASE WHEN p.deleted THEN NULL ELSE p.value END AS prev
     FROM ${table.meta} m
     LEFT JOIN LATERAL (
       SELECT revision, key, deleted, value FROM ${table.log} c
       WHERE c.revision > $1 AND c.revision <= LEAST(m.revision, $1 + $2)
         AND EXISTS (SELECT 1 FROM unnest($3::text[], $4::text[]) AS r(lo, hi)
                     WHERE c.key >= r.lo AND (r.hi IS NULL OR c.key < r.hi))
     ) c ON true
     LEFT JOIN ${table.log} p ON p.key = c.key AND p.superseded_at = c.revision
     WHERE m.id = 1
     ORDER BY c.revision, c.key`,
    values: [from.toString(), window, [...prefixes], prefixes.map(prefixEnd)],
    rowMode: 'array',
    types: RAW_TYPES,
  })
  const first = result.rows[0]
  if (first === undefined) throw new Error(`${table.meta} has no meta row`)
  return {
    head: BigInt(first[0]),
    compacted: BigInt(first[1]),
    events: batches(result.rows),
  }
}

/** Log rows (ordered by revision, key) to one `changes` event per revision. */
export function batches(rows: readonly LogRow[]): StoreEvent<Uint8Array>[] {
  const events: StoreEvent<Uint8Array>[] = []
  let current: { text: string; revision: Revision; changes: Change<Uint8Array>[] } | undefined
  for (const [, , at, key, deleted, value, prev] of rows) {
    if (at === null || key === null) continue
    if (current?.text !== at) {
      current = { text: at, revision: revisionOf(at), changes: [] }
      events.push({ type: 'changes', revision: current.revision, changes: current.changes })
    }
    const revision = current.revision
    if (deleted === 't') {
      current.changes.push(
        prev === null ? { op: 'delete', key, revision } : { op: 'delete', key, prev, revision },
      )
    } else {
      const put = value ?? new Uint8Array(0)
      current.changes.push(
        prev === null
          ? { op: 'put', key, value: put, revision }
          : { op: 'put', key, value: put, prev, revision },
      )
    }
  }
  return events
}
