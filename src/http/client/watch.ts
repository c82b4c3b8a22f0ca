import { Observable, catchError, defer, finalize, throwError, type SchedulerAction } from 'rxjs'
import { DatasyncError, UnavailableError } from '../../core/errors.js'
import type { SnapshotCause, StoreEvent } from '../../core/events.js'
import type { WatchOptions } from '../../core/store.js'
import { retryWithBackoff } from '../../internal/backoff.js'
import type { StoreEdge } from '../../internal/edge.js'
import { isFatalToWatch } from '../../internal/errors.js'
import {
  fromWireChange,
  fromWireKeyValue,
  parseRevision,
  type WireChanges,
  type WireError,
  type WireKeyValue,
  type WireSnapshotChunk,
  type WireStatus,
} from '../wire.js'
import { NAME, type ClientSettings } from './options.js'
import { HttpFailure, failureOf } from './request.js'
import { SseParser, type SseMessage } from './sse.js'

/** The first pause after a broken stream; it doubles up to `reconnectInterval`. */
const FIRST_BACKOFF_MS = 100

/**
 * Watches `prefixes` over the server's SSE stream. On a broken stream (server restarted,
 * connection cut, no heartbeat within `idleTimeout`) the store is `degraded` and the watch
 * reconnects with `Last-Event-ID` set to the last revision it delivered: the server resumes
 * from its change log (no snapshot: nothing lost, nothing twice) or sends a fresh snapshot
 * (cause `compacted`, `index-reset`, or `reconnect` when the client never had a complete one).
 * `after` starts the first request with that Last-Event-ID. With `relistOnReconnect` a
 * reconnection sends none once something was delivered: the server answers with a fresh snapshot
 * (cause `reconnect`).
 *
 * ```
 * watch(['a/']):  S--c--c--x(cut)....c(resumed)--c--x....S(compacted)--c--
 * ```
 */
export function watchOverHttp(
  settings: ClientSettings,
  edge: StoreEdge,
  prefixes: readonly string[],
  options: WatchOptions = {},
): Observable<StoreEvent<Uint8Array>> {
  return defer(() => {
    const what = `watch of ${prefixes.map((prefix) => JSON.stringify(prefix)).join(', ')}`
    const query = new URLSearchParams(
      prefixes.map((prefix): [string, string] => ['prefix', prefix]),
    ).toString()
    const url = `${settings.base}/v1/watch?${query}`
    const connection = edge.health.part()
    const upstream = edge.health.part()
    let lastId = options.after
    let delivered = false
    /** The served store reported itself degraded (a `status` event) and has not recovered. */
    let upstreamDown = false

    const connect = new Observable<StoreEvent<Uint8Array>>((subscriber) => {
      const controller = new AbortController()
      // The time of the last data: a chunk costs one now(), not a timer torn down and set again
      // (a thousand streams in one page or process read a chunk each per change batch).
      const scheduler = settings.scheduler
      let lastData = scheduler.now()
      let chunks: WireKeyValue[] = []
      let chunkRevision: string | undefined

      const handle = (message: SseMessage) => {
        switch (message.event) {
          case 'snapshot': {
            const chunk = JSON.parse(message.data) as WireSnapshotChunk
            if (chunk.revision !== chunkRevision) chunks = []
            chunkRevision = chunk.revision
            chunks.push(...chunk.items)
            if (chunk.more) return
            const at = parseRevision(chunk.revision, 'a snapshot')
            const items = chunks.map(fromWireKeyValue)
            chunks = []
            chunkRevision = undefined
            const cause: SnapshotCause =
              chunk.cause === 'startup' && delivered ? 'reconnect' : chunk.cause
            lastId = at
            delivered = true
            subscriber.next({ type: 'snapshot', revision: at, items, cause })
            return
          }
          case 'changes': {
            const batch = JSON.parse(message.data) as WireChanges
            const at = parseRevision(batch.revision, 'a change batch')
            lastId = at
            delivered = true
            subscriber.next({
              type: 'changes',
              revision: at,
              changes: batch.changes.map(fromWireChange),
            })
            return
          }
          case 'progress':
            if (message.id !== undefined) lastId = parseRevision(message.id, 'a progress event')
            return
          case 'status': {
            const status = JSON.parse(message.data) as WireStatus
            if (status.state === 'ready') {
              upstream.up()
              // The served store is back from an outage: with relistOnReconnect, a fresh
              // snapshot, as after a reconnection of this client's own stream.
              if (upstreamDown && options.relistOnReconnect === true && delivered) {
                throw new Relist()
              }
              upstreamDown = false
            } else {
              upstreamDown = true
              upstream.down(
                new UnavailableError(
                  NAME,
                  `the served store: ${status.error?.message ?? 'degraded'}`,
                ),
                true,
              )
            }
            return
          }
          case 'error': {
            const { error } = JSON.parse(message.data) as { error: WireError }
            throw new HttpFailure(500, error)
          }
          default:
        }
      }

      const read = async () => {
        const response = await settings.fetch(url, {
          headers: {
            ...settings.headers,
            accept: 'text/event-stream',
            ...(lastId === undefined ? {} : { 'last-event-id': lastId.toString() }),
          },
          signal: controller.signal,
        })
        if (!response.ok) throw await failureOf(response)
        if (response.body === null)
          throw new UnavailableError(NAME, `${what}: the answer has no body`)
        connection.up()
        lastData = scheduler.now()
        const reader = response.body.getReader()
        const decoder = new TextDecoder()
        const parser = new SseParser()
        for (;;) {
          const { done, value } = await reader.read()
          if (done) throw new UnavailableError(NAME, `${what}: the server ended the stream`)
          lastData = scheduler.now()
          for (const message of parser.push(
            decoder.decode(value as Uint8Array, { stream: true }),
          )) {
            try {
              handle(message)
            } catch (error) {
              if (error instanceof HttpFailure || error instanceof Relist) throw error
              throw new DatasyncError(
                'internal',
                `${NAME}: ${what}: a malformed '${message.event}' event: ${String(error)}`,
              )
            }
          }
        }
      }

      // Fires idleMs after the last data: when it wakes early (data came meanwhile) it sleeps
      // again for the rest.
      const idle = scheduler.schedule(function (this: SchedulerAction<undefined>) {
        const quiet = scheduler.now() - lastData
        if (quiet < settings.idleMs) {
          this.schedule(undefined, settings.idleMs - quiet)
          return
        }
        controller.abort()
        subscriber.error(
          new UnavailableError(
            NAME,
            `${what}: no data from the server for ${settings.idleMs} ms (idleTimeout)`,
          ),
        )
      }, settings.idleMs)
      read().catch((error: unknown) => {
        subscriber.error(error)
      })
      return () => {
        idle.unsubscribe()
        controller.abort()
      }
    })

    return connect.pipe(
      catchError((raw: unknown, again) => {
        if (raw instanceof Relist) {
          lastId = undefined
          upstreamDown = false
          return again
        }
        const mapped = edge.handle(raw, what, connection)
        // The next attempt lists afresh: a snapshot from after the outage (P4).
        if (options.relistOnReconnect === true && delivered) lastId = undefined
        return throwError(() => (isFatalToWatch(mapped) ? markFatal(mapped.error) : mapped.error))
      }),
      retryWithBackoff({
        firstMs: FIRST_BACKOFF_MS,
        maxMs: settings.reconnectMs,
        scheduler: settings.scheduler,
        shouldRetry: (error) =>
          error instanceof DatasyncError && error.retryable && !fatal.has(error),
      }),
      finalize(() => {
        connection.gone()
        upstream.gone()
      }),
    )
  })
}

/** The stream is to be opened again without Last-Event-ID, for a fresh snapshot. */
class Relist extends Error {
  constructor() {
    super('relist')
  }
}

/** Errors that end a watch although their code is retryable (a failed upstream watch). */
const fatal = new WeakSet<DatasyncError>()

function markFatal(error: DatasyncError): DatasyncError {
  fatal.add(error)
  return error
}
