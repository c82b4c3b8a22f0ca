import {
  AsyncSubject,
  EMPTY,
  Observable,
  catchError,
  defer,
  mergeMap,
  of,
  retry,
  tap,
  throwError,
  timeout,
  timer,
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
  const attempt = (start: (done: Done) => void) =>
    defer(() => {
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
      start(done)
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

  const withPolicy = (attempts: Observable<undefined>): Observable<never> => {
    switch (settings.policy) {
      case 'continue':
        return attempts.pipe(
          catchError(() => EMPTY),
          mergeMap(() => EMPTY),
        )
      case 'retry':
        return attempts.pipe(
          retry({
            count: settings.maxRetries,
            delay: () => timer(settings.retryDelayMs, settings.scheduler),
          }),
          mergeMap(() => EMPTY),
        )
      case 'halt':
        return attempts.pipe(mergeMap(() => EMPTY))
    }
  }

  return new Observable<never>((subscriber) => {
    // The first delivery is made here, before any operator exists: a consumer that acknowledges
    // at once and without an error (most do) settles it with no Subject, timer or operator
    // chain. Anything else (an ack to come, a failure, a throw) takes the full path, whose
    // first attempt waits for the `done` given with this delivery.
    let answer: [error?: unknown] | undefined
    let late: Done | undefined
    const deliveredAt = settings.scheduler.now()
    let thrown: { readonly error: unknown } | undefined
    try {
      deliver((...args: [error?: unknown]) => {
        if (answer !== undefined) return
        answer = args
        late?.(...args)
      })
    } catch (error) {
      thrown = { error }
    }
    if (thrown === undefined && answer !== undefined && (answer[0] ?? null) === null) {
      settings.settled?.(settings.scheduler.now() - deliveredAt)
      subscriber.complete()
      return
    }
    let first = true
    const attempts = defer(() => {
      if (!first) return attempt(deliver)
      first = false
      return attempt((done) => {
        if (thrown !== undefined) throw thrown.error
        if (answer !== undefined) done(...answer)
        else late = done
      })
    })
    return withPolicy(attempts).subscribe(subscriber)
  })
}
