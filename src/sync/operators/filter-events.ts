import { filter, map, type MonoTypeOperatorFunction, type OperatorFunction } from 'rxjs'
import type { KeyValue, Change } from '../../core/events.js'
import type { ConsumerEvent } from '../types.js'

/**
 * Lets through the events `predicate` accepts and acknowledges the ones it drops (`done()`), so
 * that a dropped event never runs into the ack timeout.
 *
 * ```
 * events$:  --a--b--c--
 * result:   --a-----c--     (b fails the predicate: b.done() is called as it is dropped)
 * ```
 *
 * @example
 * ```ts
 * import { filterEvents } from 'rx-datasync'
 *
 * routes.events$.pipe(filterEvents((event) => event.reason !== 'manual'))
 * ```
 */
export function filterEvents<T>(
  predicate: (event: ConsumerEvent<T>) => boolean,
): MonoTypeOperatorFunction<ConsumerEvent<T>> {
  return filter((event) => {
    if (predicate(event)) return true
    event.done()
    return false
  })
}

/**
 * Maps every value an event carries (resync items, and each change's `value` and `prev`) with
 * `project`, keeping the event's `done`: acknowledging the mapped event acknowledges the original.
 * Values are read (and, for a lazily decoded consumer, decoded) when the event passes.
 *
 * ```
 * events$:  --a(k=1)--b(k: 1>2)--
 * result:   --a(k=10)-b(k: 10>20)--   (project: v => v * 10)
 * ```
 *
 * @example
 * ```ts
 * import { mapValues } from 'rx-datasync'
 *
 * routes.events$.pipe(mapValues((route, key) => ({ ...route, id: key })))
 * ```
 */
export function mapValues<T, R>(
  project: (value: T, key: string) => R,
): OperatorFunction<ConsumerEvent<T>, ConsumerEvent<R>> {
  return map((event): ConsumerEvent<R> => {
    if (event.kind === 'resync') {
      return {
        ...event,
        items: event.items.map((item): KeyValue<R> => ({
          ...item,
          value: project(item.value, item.key),
        })),
      }
    }
    return { ...event, changes: event.changes.map((change) => mapChange(change, project)) }
  })
}

function mapChange<T, R>(change: Change<T>, project: (value: T, key: string) => R): Change<R> {
  const prev = change.prev === undefined ? {} : { prev: project(change.prev, change.key) }
  if (change.op === 'delete') {
    return { op: 'delete', key: change.key, revision: change.revision, ...prev }
  }
  return {
    op: 'put',
    key: change.key,
    value: project(change.value, change.key),
    revision: change.revision,
    ...prev,
  }
}
