import {
  defer,
  endWith,
  from,
  ignoreElements,
  isObservable,
  map,
  mergeMap,
  of,
  catchError,
  type Observable,
  type OperatorFunction,
} from 'rxjs'
import type { ConsumerEvent } from '../types.js'

/**
 * What {@link handleEvents} runs per event: it applies the event and returns a Promise (done when
 * it resolves), an Observable (done when it completes), or anything else (done at once). A throw,
 * a rejection or an error acknowledges the event with that error.
 */
export type EventHandler<T> = (event: ConsumerEvent<T>) => unknown

/** What {@link handleEvents} emits after it acknowledged an event. */
export interface HandledEvent<T> {
  readonly event: ConsumerEvent<T>
  /** The handler's failure, given to `done(error)`; absent when it succeeded. */
  readonly error?: unknown
}

/** Options of {@link handleEvents}. */
export interface HandleEventsOptions {
  /**
   * How many events are handled at once. A consumer gets a second event before the first is
   * acknowledged only with `maxInFlight` above 1; keep 1 where the order of applying matters.
   * @default 1
   */
  readonly concurrency?: number
}

/**
 * Runs `handler` for each event and acknowledges it when the handler finishes: `done()` when it
 * succeeds, `done(error)` when it throws, rejects or errors (the orchestrator reports that on
 * `errors$` as a `ConsumerError` naming the consumer, and applies its ack policy). The stream
 * goes on after a failure. Emits one {@link HandledEvent} per event, after its acknowledgement.
 *
 * Unsubscribing cancels an Observable handler in flight and leaves its event unacknowledged: to
 * leave, close the consumer, which cancels its deliveries.
 *
 * ```
 * events$:  --a---b-----c--
 * handler:    (a: --|) (b: -#) (c: |)
 * result:   ----A---B---C--     (A: done(), B: done(error), C: done())
 * ```
 *
 * @example
 * ```ts
 * import { handleEvents } from 'rx-datasync'
 *
 * routes.events$.pipe(handleEvents(async (event) => applyRoutes(event))).subscribe()
 * ```
 */
export function handleEvents<T>(
  handler: EventHandler<T>,
  options: HandleEventsOptions = {},
): OperatorFunction<ConsumerEvent<T>, HandledEvent<T>> {
  const concurrency = options.concurrency ?? 1
  if (!(Number.isInteger(concurrency) && concurrency >= 1) && concurrency !== Infinity) {
    throw new TypeError(
      `handleEvents: expected concurrency to be a whole number from 1 up, got ${String(concurrency)}`,
    )
  }
  return (events$) =>
    events$.pipe(
      mergeMap(
        (event) =>
          defer(() => finished(handler(event))).pipe(
            map((): HandledEvent<T> => {
              event.done()
              return { event }
            }),
            catchError((error: unknown) => {
              event.done(error)
              return of<HandledEvent<T>>({ event, error })
            }),
          ),
        concurrency,
      ),
    )
}

/** One `undefined` when `result` has finished: when its Promise or Observable ends, else at once. */
function finished(result: unknown): Observable<undefined> {
  if (isObservable(result) || isPromiseLike(result)) {
    return from(result).pipe(ignoreElements(), endWith(undefined))
  }
  return of(undefined)
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}
