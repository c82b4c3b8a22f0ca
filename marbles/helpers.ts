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
