import {
  AsyncSubject,
  EMPTY,
  catchError,
  defer,
  mergeMap,
  of,
  retry,
  tap,
  throwError,
  timeout,
  timer,
  type Observable,
  type SchedulerLike,
} from 'rxjs'
import { AckTimeoutError, ConsumerError, type DatasyncError } from '../../core/errors.js'
import type { AckPolicy, Done } from '../types.js'

/** How {@link awaitAck} delivers one event and judges its acknowledgement. */
export interface AckSettings {
  readonly consumer: string
  readonly kind: 'resync' | 'change'
  readonly timeoutMs: number
  readonly policy: AckPolicy
  readonly maxRetries: number
  readonly retryDelayMs: number
  readonly scheduler: SchedulerLike
  /** Called with every failure (timeout or `done(error)`), before the policy acts. */
  readonly report: (error: DatasyncError) => void
  /** Called when an attempt settles: how long it took, and its failure if it failed. */
  readonly settled?: (latencyMs: number, error?: DatasyncError) => void
}

/**
 * Delivers an event made by `deliver(done)` and completes when it is acknowledged, or when the
 * policy says to go on after a failure; it emits nothing (hence `Observable<never>`: it can be
 * concatenated with other steps as it is). Under `retry` each attempt calls `deliver` again with a
 * fresh `done`; under `halt` (and when retries run out) it errors with the failure.
 *
 * ```
 * deliver:  e-------            (consumer calls done() at frame 3)
 * result:   ---|
 * timeout:  e-----#  -> continue: ------|   halt: ------#
 * ```
 *
 * `done` is the response Subject's only door: the first call settles the attempt, later calls
 * (and calls after a timeout) do nothing.
 */
export function awaitAck(deliver: (done: Done) => void, settings: AckSettings): Observable<never> {
  const attempt = defer(() => {
    const response = new AsyncSubject<{ readonly error: unknown } | null>()
    let settled = false
    const done: Done = (...args: [error?: unknown]) => {
      if (settled) return
      settled = true
      const error = args[0]
      response.next(error === undefined || error === null ? null : { error })
      response.complete()
    }
    const deliveredAt = settings.scheduler.now()
    const elapsed = () => settings.scheduler.now() - deliveredAt
    deliver(done)
    return response.pipe(
      timeout({
        first: settings.timeoutMs,
        scheduler: settings.scheduler,
        with: () => {
          settled = true
          return throwError(
            () => new AckTimeoutError(settings.consumer, settings.kind, settings.timeoutMs),
          )
        },
      }),
      mergeMap((outcome) =>
        outcome === null
          ? of(undefined)
          : throwError(() => new ConsumerError(settings.consumer, settings.kind, outcome.error)),
      ),
      tap({
        next: () => settings.settled?.(elapsed()),
        error: (error: DatasyncError) => {
          settings.settled?.(elapsed(), error)
          settings.report(error)
        },
      }),
    )
  })

  switch (settings.policy) {
    case 'continue':
      return attempt.pipe(
        catchError(() => EMPTY),
        mergeMap(() => EMPTY),
      )
    case 'retry':
      return attempt.pipe(
        retry({
          count: settings.maxRetries,
          delay: () => timer(settings.retryDelayMs, settings.scheduler),
        }),
        mergeMap(() => EMPTY),
      )
    case 'halt':
      return attempt.pipe(mergeMap(() => EMPTY))
  }
}
