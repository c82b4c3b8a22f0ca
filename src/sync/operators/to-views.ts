import { Observable, type OperatorFunction } from 'rxjs'
import { enableMapSet, produce } from 'immer'
import { valuesEqual } from '../../core/equal.js'
import type { KeyValue } from '../../core/events.js'
import { applyChanges, createSnapshot, type Snapshot } from '../../core/snapshot.js'
import type { ConsumerEvent } from '../types.js'

// Views are Maps: immer's Map support, loaded only where views are built (snapshots need no immer).
enableMapSet()

/**
 * Turns a consumer's events into the consumer's state: after each event it emits an immutable
 * {@link Snapshot} (key to `{ key, value, revision }`), then acknowledges the event. Unchanged
 * keys keep their object identity from one view to the next (immer's structural sharing), a
 * resync included when a key's value and revision did not change: a front-end store, a memoized
 * selector or `combineLatest` sees only what changed.
 *
 * The event is acknowledged once its view has been emitted: a failure further down the pipe is
 * that operator's error, not the event's (run the work that can fail in {@link handleEvents}, or
 * catch it there). A value that cannot be read while the view is built (a lazily decoded value
 * that does not decode) acknowledges the event with that error and ends the stream with it.
 *
 * ```
 * events$:  --R{a:1,b:2}----c{b:3}----
 * result:   --V1------------V2--------  (V2.get('a') === V1.get('a'))
 * ```
 *
 * @example
 * ```ts
 * import { toViews } from 'rx-datasync'
 *
 * routes.events$.pipe(toViews()).subscribe((view) => render([...view.values()]))
 * ```
 */
export function toViews<T>(): OperatorFunction<ConsumerEvent<T>, Snapshot<T>> {
  return (events$) =>
    new Observable<Snapshot<T>>((subscriber) => {
      let view: Snapshot<T> = createSnapshot<T>([])
      return events$.subscribe({
        next: (event) => {
          try {
            view =
              event.kind === 'resync'
                ? relist(view, event.items)
                : applyChanges(view, event.changes)
            subscriber.next(view)
          } catch (error) {
            event.done(error)
            subscriber.error(error)
            return
          }
          event.done()
        },
        error: (error: unknown) => {
          subscriber.error(error)
        },
        complete: () => {
          subscriber.complete()
        },
      })
    })
}

/** The view of a resync: a new map that keeps the entries whose value and revision held. */
function relist<T>(view: Snapshot<T>, items: readonly KeyValue<T>[]): Snapshot<T> {
  return produce(view as Map<string, KeyValue<T>>, (draft) => {
    const listed = new Set<string>()
    for (const item of items) {
      listed.add(item.key)
      const held = view.get(item.key)
      const same =
        held !== undefined && held.revision === item.revision && valuesEqual(held.value, item.value)
      if (!same)
        draft.set(item.key, { key: item.key, value: item.value, revision: item.revision } as never)
    }
    for (const key of view.keys()) if (!listed.has(key)) draft.delete(key)
  })
}
