import {
  Observable,
  asyncScheduler,
  type OperatorFunction,
  type SchedulerLike,
  type Subscription,
} from 'rxjs'
import { toMillis, type Duration } from '../../core/duration.js'
import type { Change, KeyValue } from '../../core/events.js'
import { byKey } from '../../core/order.js'
import type { ConsumerEvent, Done } from '../types.js'

/** Options of {@link batchQuiet}. */
export interface BatchQuietOptions {
  /** The quiet period: a batch is emitted once no event came for this long. */
  readonly min: Duration
  /**
   * The longest a batch waits after its first event, however busy the stream (so a steady
   * trickle of changes cannot hold a batch back for ever). Keep it below the ack timeout: the
   * batched events are unacknowledged while they wait. @default 4 × min
   */
  readonly max?: Duration
  /** Where the periods are timed; a `TestScheduler` in marble specs. @default asyncScheduler */
  readonly scheduler?: SchedulerLike
}

/**
 * Merges the events that arrive within a quiet period into one, like consul-template's
 * `wait = "min:max"`: a batch is emitted `min` after its last event, or `max` after its first,
 * whichever comes first. Acknowledging the merged event acknowledges every event in it, with the
 * same error if there is one.
 *
 * How events merge: changes coalesce per key (the latest op and value, the earliest `prev`; a key
 * that was created and deleted within the batch drops out); a resync replaces everything before
 * it and takes the changes after it into its items. The merged event has the reason and revision
 * of the latest event. An event that would merge to nothing (a key created and deleted) is still
 * emitted, empty, so that it is acknowledged through the usual path.
 *
 * The orchestrator hands a consumer its next event only when the consumer has room for it
 * (`maxInFlight`, default 1): with 1, the first event waits `min` here while later changes
 * coalesce in the orchestrator; with a larger `maxInFlight`, they coalesce here.
 *
 * ```
 * events$:  -a-b------------c-d-e-f-g-h-
 * result:   -------(ab)-----------(cdefg)-  (min 5 frames, max 10 frames)
 * ```
 *
 * @example
 * ```ts
 * import { batchQuiet, handleEvents } from 'rx-datasync'
 *
 * config.events$
 *   .pipe(batchQuiet({ min: '200ms', max: '2s' }), handleEvents(renderConfigFile))
 *   .subscribe()
 * ```
 */
export function batchQuiet<T>(
  options: BatchQuietOptions,
): OperatorFunction<ConsumerEvent<T>, ConsumerEvent<T>> {
  const minMs = toMillis(options.min, 'batchQuiet min')
  const maxMs = options.max === undefined ? 4 * minMs : toMillis(options.max, 'batchQuiet max')
  if (maxMs < minMs) {
    throw new TypeError(`batchQuiet: expected max (${maxMs} ms) to be at least min (${minMs} ms)`)
  }
  const scheduler = options.scheduler ?? asyncScheduler
  return (events$) =>
    new Observable<ConsumerEvent<T>>((subscriber) => {
      let batch: ConsumerEvent<T>[] = []
      let firstAt = 0
      let timer: Subscription | undefined
      const emit = () => {
        timer = undefined
        const events = batch
        batch = []
        if (events.length > 0) subscriber.next(mergeEvents(events))
      }
      const arm = () => {
        timer?.unsubscribe()
        const due = Math.min(minMs, firstAt + maxMs - scheduler.now())
        timer = scheduler.schedule(emit, Math.max(0, due))
      }
      const subscription = events$.subscribe({
        next: (event) => {
          if (batch.length === 0) firstAt = scheduler.now()
          batch.push(event)
          arm()
        },
        error: (error: unknown) => {
          subscriber.error(error)
        },
        complete: () => {
          // What waits goes out now: its events are owed an acknowledgement.
          timer?.unsubscribe()
          emit()
          subscriber.complete()
        },
      })
      return () => {
        timer?.unsubscribe()
        subscription.unsubscribe()
      }
    })
}

/** Merges a batch of a consumer's events into one (see {@link batchQuiet}). */
export function mergeEvents<T>(events: readonly ConsumerEvent<T>[]): ConsumerEvent<T> {
  const last = events.at(-1)
  if (last === undefined) throw new RangeError('mergeEvents: expected at least one event')
  if (events.length === 1) return last
  const done: Done = (...args: [error?: unknown]) => {
    for (const event of events) event.done(...args)
  }
  let resyncAt = -1
  events.forEach((event, i) => {
    if (event.kind === 'resync') resyncAt = i
  })
  const later = events.slice(resyncAt + 1) as readonly Extract<
    ConsumerEvent<T>,
    { kind: 'change' }
  >[]
  const resync = resyncAt >= 0 ? events[resyncAt] : undefined
  if (resync?.kind === 'resync') {
    const items = new Map<string, KeyValue<T>>()
    for (const item of resync.items) items.set(item.key, item)
    for (const event of later) {
      for (const change of event.changes) {
        if (change.op === 'put') {
          items.set(change.key, { key: change.key, value: change.value, revision: change.revision })
        } else items.delete(change.key)
      }
    }
    const sorted = [...items.values()].sort(byKey)
    return { ...resync, reason: last.reason, revision: last.revision, items: sorted, done }
  }
  return {
    ...(last as Extract<ConsumerEvent<T>, { kind: 'change' }>),
    changes: coalesce(later),
    done,
  }
}

/** One change per key: the latest op and value, the earliest prev, in first-touched order. */
function coalesce<T>(events: readonly { readonly changes: readonly Change<T>[] }[]): Change<T>[] {
  const merged = new Map<string, { first: Change<T>; latest: Change<T> }>()
  for (const event of events) {
    for (const change of event.changes) {
      const seen = merged.get(change.key)
      if (seen === undefined) merged.set(change.key, { first: change, latest: change })
      else seen.latest = change
    }
  }
  const out: Change<T>[] = []
  for (const { first, latest } of merged.values()) {
    const hadPrev = 'prev' in first && first.prev !== undefined
    if (!hadPrev && first.op === 'put' && latest.op === 'delete') continue
    const prev = hadPrev ? { prev: first.prev as T } : {}
    out.push(
      latest.op === 'put'
        ? { op: 'put', key: latest.key, value: latest.value, revision: latest.revision, ...prev }
        : { op: 'delete', key: latest.key, revision: latest.revision, ...prev },
    )
  }
  return out
}
