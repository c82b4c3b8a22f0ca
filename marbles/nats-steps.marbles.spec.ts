import { Observable, of, throwError } from 'rxjs'
import { describe, it } from 'vitest'
import { concatSteps } from '../src/backends/nats/steps.js'
import { testScheduler } from './helpers.js'

describe('nats concatSteps', () => {
  it('emits synchronous steps at once and keeps order behind an awaited step', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const source = hot('  --a--b--c--d--|')
      const inner = cold('       ----B|')
      const sourceSubs = '  ^-------------!'
      const innerSubs = '   -----^----!'
      const expected = '    --A------BCD--|'
      const step = (value: string): string[] | Observable<string> =>
        value === 'b' ? inner : [value.toUpperCase()]
      expectObservable(source.pipe(concatSteps(step))).toBe(expected)
      expectSubscriptions(source.subscriptions).toBe(sourceSubs)
      expectSubscriptions(inner.subscriptions).toBe(innerSubs)
    })
  })

  it('completes only after the queued values behind an awaited step', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const source = hot('  --a-b|')
      const inner = cold('    -----(X|)')
      const sourceSubs = '  ^----!'
      const expected = '    -------(XB|)'
      const step = (value: string): string[] | Observable<string> =>
        value === 'a' ? inner : [value.toUpperCase()]
      expectObservable(source.pipe(concatSteps(step))).toBe(expected)
      expectSubscriptions(source.subscriptions).toBe(sourceSubs)
    })
  })

  it('takes a step that completes synchronously as a synchronous one', () => {
    testScheduler().run(({ hot, expectObservable }) => {
      const source = hot('--a--b--|')
      const expected = '  --A--B--|'
      const step = (value: string): string[] | Observable<string> =>
        value === 'a' ? of('A') : [value.toUpperCase()]
      expectObservable(source.pipe(concatSteps(step))).toBe(expected)
    })
  })

  it('passes an error of a step and unsubscribes the source', () => {
    testScheduler().run(({ hot, expectObservable, expectSubscriptions }) => {
      const source = hot('  --a--b--c-|')
      const sourceSubs = '  ^----!'
      const expected = '    --A--#'
      const step = (value: string): string[] | Observable<string> =>
        value === 'b' ? throwError(() => 'error') : [value.toUpperCase()]
      expectObservable(source.pipe(concatSteps(step))).toBe(expected)
      expectSubscriptions(source.subscriptions).toBe(sourceSubs)
    })
  })

  it('unsubscribes the awaited step and the source when unsubscribed', () => {
    testScheduler().run(({ hot, cold, expectObservable, expectSubscriptions }) => {
      const source = hot('  --a--b--|')
      const inner = cold('    -')
      const sourceSubs = '  ^------!'
      const innerSubs = '   --^----!'
      const unsub = '       -------!'
      const step = (value: string): string[] | Observable<string> =>
        value === 'a' ? inner : [value]
      expectObservable(source.pipe(concatSteps(step)), unsub).toBe('-')
      expectSubscriptions(source.subscriptions).toBe(sourceSubs)
      expectSubscriptions(inner.subscriptions).toBe(innerSubs)
    })
  })
})
