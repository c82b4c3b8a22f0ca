import { asyncScheduler, map, type Observable } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { expect } from 'vitest'
import type { ConsumerEvent } from '../src/index.js'
import { describeEvent } from '../src/testing/index.js'

/** A TestScheduler that asserts with vitest's deep equality. */
export function testScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => {
    expect(actual).toEqual(expected)
  })
}

/** A consumer's events as readable labels. */
export function labels<T>(events$: Observable<ConsumerEvent<T>>): Observable<string> {
  return events$.pipe(map((event) => describeEvent(event)))
}

/** Runs `work` at virtual frame `frame` (inside `TestScheduler.run`, asyncScheduler is virtual). */
export function at(work: () => void, frame: number): void {
  asyncScheduler.schedule(work, frame)
}

/**
 * Stops `sync` at each value of `stops`: a hot diagram (`hot('-----x')`), so the end of a run
 * lines up with the other diagrams of a spec. Teardown is part of what a spec asserts: the store
 * watch's subscription ends with the `!` of the stop.
 */
export function stopOn(sync: { stop(): void }, stops: Observable<unknown>): void {
  stops.subscribe(() => {
    sync.stop()
  })
}

/**
 * Drives a run from a hot diagram, so its steps line up with the other diagrams of a spec:
 * `g` starts it, `m` asks for a manual resync, `x` stops it (`'g---m--x'`).
 */
export function drive(
  sync: { start(): unknown; resync(): void; stop(): void },
  controls: Observable<string>,
): void {
  controls.subscribe((control) => {
    if (control === 'g') sync.start()
    else if (control === 'm') sync.resync()
    else if (control === 'x') sync.stop()
    else throw new Error(`drive: expected g (start), m (resync) or x (stop), got '${control}'`)
  })
}
