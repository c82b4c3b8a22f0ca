import {
  Subject,
  asyncScheduler,
  filter,
  firstValueFrom,
  startWith,
  take,
  timeout,
  timer,
  type SchedulerLike,
  type Subscription,
} from 'rxjs'
import { toMillis, type Duration } from '../core/duration.js'
import { valuesEqual } from '../core/equal.js'
import type { KeyValue } from '../core/events.js'
import type { Revision } from '../core/revision.js'
import type { Consumer, ConsumerEvent } from '../sync/types.js'

/** Options of {@link recordConsumer}. */
export interface RecorderOptions<T> {
  /**
   * Milliseconds (or a function of the event) before `done()` is called; 0 acknowledges at once,
   * `undefined` from the function never acknowledges. @default 0
   */
  readonly ackDelay?: number | ((event: ConsumerEvent<T>) => number | undefined)
  /** Returns an error for the events to acknowledge with `done(error)`. */
  readonly fail?: (event: ConsumerEvent<T>) => unknown
  /** The scheduler for ack delays and `until` timeouts. @default asyncScheduler */
  readonly scheduler?: SchedulerLike
}

/** A consumer's events, applied to a map, with every broken promise written down. */
export interface ConsumerRecorder<T> {
  /** The consumer's state as its events built it. */
  readonly state: ReadonlyMap<string, T>
  /** Every event received, in order. */
  readonly events: readonly ConsumerEvent<T>[]
  /**
   * Promises the events broke, in words: a change before the first resync, a `prev` that is not
   * the value last received, a delete of a key not held, a key's revision applied twice or going
   * backwards, a key twice in one resync.
   */
  readonly violations: readonly string[]
  /** Resolves when `predicate(state)` holds, checked now and after each event; rejects on timeout. */
  until(predicate: (state: ReadonlyMap<string, T>) => boolean, within?: Duration): Promise<void>
  /** Resolves when the state equals `items` exactly (same keys, equal values). */
  untilEquals(items: Iterable<KeyValue<T>>, within?: Duration): Promise<void>
  /** Stops listening. */
  stop(): void
}

/**
 * Records a consumer for tests: applies its events to a map, acknowledges them (after an optional
 * delay), and checks the promises each event must keep (P1, P2, P3).
 *
 * @example
 * ```ts
 * import { createDatasync, createMemoryStore } from 'rx-datasync'
 * import { recordConsumer } from 'rx-datasync/testing'
 * const store = createMemoryStore()
 * const sync = createDatasync(store)
 * const recorder = recordConsumer(sync.register('all', { prefixes: [''] }))
 * sync.start()
 * await recorder.until((state) => state.size === 0)
 * ```
 */
export function recordConsumer<T>(
  consumer: Consumer<T>,
  options: RecorderOptions<T> = {},
): ConsumerRecorder<T> {
  const scheduler = options.scheduler ?? asyncScheduler
  const state = new Map<string, T>()
  const revisions = new Map<string, Revision>()
  const events: ConsumerEvent<T>[] = []
  const violations: string[] = []
  const updates = new Subject<void>()
  let synced = false

  const check = (event: ConsumerEvent<T>) => {
    if (event.kind === 'resync') {
      synced = true
      state.clear()
      revisions.clear()
      for (const item of event.items) {
        if (state.has(item.key)) violations.push(`resync: key '${item.key}' delivered twice`)
        state.set(item.key, item.value)
        revisions.set(item.key, item.revision)
      }
      return
    }
    if (!synced) violations.push(`change before the first resync (${event.changes.length} changes)`)
    for (const change of event.changes) {
      const held = state.has(change.key)
      const last = state.get(change.key)
      if (change.prev === undefined ? held : !held || !valuesEqual(change.prev, last)) {
        violations.push(
          `key '${change.key}': prev ${JSON.stringify(change.prev)} is not the value last received (${held ? JSON.stringify(last) : 'none'})`,
        )
      }
      const lastRevision = revisions.get(change.key)
      if (lastRevision !== undefined && change.revision <= lastRevision) {
        violations.push(
          `key '${change.key}': revision ${change.revision} applied after ${lastRevision}`,
        )
      }
      if (change.op === 'put') {
        state.set(change.key, change.value)
        revisions.set(change.key, change.revision)
      } else {
        if (!held) violations.push(`key '${change.key}': delete of a key not held`)
        state.delete(change.key)
        revisions.set(change.key, change.revision)
      }
    }
  }

  const subscription: Subscription = consumer.events$.subscribe((event) => {
    events.push(event)
    check(event)
    updates.next()
    const delay =
      typeof options.ackDelay === 'function' ? options.ackDelay(event) : (options.ackDelay ?? 0)
    if (delay === undefined) return
    const settle = () => {
      const error = options.fail?.(event)
      if (error === undefined) event.done()
      else event.done(error)
    }
    if (delay === 0) settle()
    else subscription.add(timer(delay, scheduler).subscribe(settle))
  })

  const until = (predicate: (s: ReadonlyMap<string, T>) => boolean, within: Duration = '10s') =>
    firstValueFrom(
      updates.pipe(
        startWith(undefined),
        filter(() => predicate(state)),
        take(1),
        timeout({
          first: toMillis(within, 'within'),
          scheduler,
          with: () => {
            throw new Error(
              `consumer '${consumer.name}': the condition did not hold within ${String(within)}; state has ${state.size} keys`,
            )
          },
        }),
      ),
    ).then(() => undefined)

  return {
    state,
    events,
    violations,
    until,
    untilEquals(items, within) {
      const expected = new Map<string, T>()
      for (const item of items) expected.set(item.key, item.value)
      return until(
        (s) =>
          s.size === expected.size &&
          [...expected].every(([key, value]) => s.has(key) && valuesEqual(s.get(key), value)),
        within,
      ).catch((error: unknown) => {
        const missing = [...expected.keys()].filter((key) => !state.has(key))
        const extra = [...state.keys()].filter((key) => !expected.has(key))
        const differ = [...expected].filter(
          ([key, value]) => state.has(key) && !valuesEqual(state.get(key), value),
        )
        throw new Error(
          `${error instanceof Error ? error.message : String(error)}; missing ${JSON.stringify(missing.slice(0, 5))}, extra ${JSON.stringify(extra.slice(0, 5))}, different ${JSON.stringify(differ.map(([k]) => k).slice(0, 5))}`,
        )
      })
    },
    stop() {
      subscription.unsubscribe()
      updates.complete()
    },
  }
}
