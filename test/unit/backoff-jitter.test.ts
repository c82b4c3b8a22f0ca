import { defer, throwError, type Observable } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { describe, expect, it } from 'vitest'
import { backoffDelay, checkBackoff, retryWithBackoff } from '../../src/internal/backoff.js'
import { createDatasync, createMemoryStore } from '../../src/index.js'

/** A random source that returns the given numbers in turn. */
function sequence(...values: number[]): () => number {
  let i = 0
  return () => values[i++ % values.length] ?? 0
}

describe('backoff with jitter', () => {
  it('multiplies by the factor up to the cap', () => {
    const bounds = { firstMs: 10, maxMs: 500, factor: 3 }
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(bounds, n))).toEqual([10, 30, 90, 270, 500])
  })

  it('shortens each delay by up to the jitter share, from the random source', () => {
    const bounds = { firstMs: 100, maxMs: 1_000, jitter: 0.5 }
    expect(backoffDelay({ ...bounds, random: () => 0 }, 3)).toBe(400)
    expect(backoffDelay({ ...bounds, random: () => 0.5 }, 3)).toBe(300)
    expect(backoffDelay({ ...bounds, random: () => 0.999_999 }, 3)).toBe(200)
    // The cap is applied before the jitter: a capped delay still spreads.
    expect(backoffDelay({ ...bounds, random: () => 1 }, 10)).toBe(500)
  })

  it('stays within [d * (1 - jitter), d] with the default random source', () => {
    for (let i = 0; i < 200; i++) {
      const delay = backoffDelay({ firstMs: 1_000, maxMs: 1_000, jitter: 0.2 }, 1)
      expect(delay).toBeGreaterThanOrEqual(800)
      expect(delay).toBeLessThanOrEqual(1_000)
    }
  })

  it('schedules jittered retries in virtual time', () => {
    const scheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected)
    })
    scheduler.run(({ expectObservable }) => {
      let attempts = 0
      const source: Observable<string> = defer(() => {
        attempts++
        return attempts < 4 ? throwError(() => new Error('down')) : ['ok']
      })
      // Delays 10, 20, 40 shortened by 0.5 * (0.2, 0.5, 1): 9, 15, 20 → the value at 44.
      const retried = source.pipe(
        retryWithBackoff({
          firstMs: 10,
          maxMs: 100,
          jitter: 0.5,
          random: sequence(0.2, 0.5, 1),
          scheduler,
          shouldRetry: () => true,
        }),
      )
      expectObservable(retried).toBe('44ms (a|)', { a: 'ok' })
    })
  })

  it('refuses options out of range, naming the field', () => {
    expect(() => checkBackoff('keyRetry', { firstMs: 10, maxMs: 5 })).toThrow(
      'keyRetry.maxMs: expected a number of at least 10 (the firstMs), got 5',
    )
    // With the user's names of the fields, in milliseconds.
    expect(() =>
      checkBackoff('keyRetry', { firstMs: 10, maxMs: 5 }, { firstMs: 'base', maxMs: 'cap' }),
    ).toThrow('keyRetry.cap: expected a number of at least 10 ms (the base), got 5 ms')
    expect(() => createDatasync(createMemoryStore(), { keyRetry: { base: '1h' } })).toThrow(
      'keyRetry.cap: expected a number of at least 3600000 ms (the base), got 300000 ms',
    )
    expect(() => checkBackoff('keyRetry', { firstMs: 10, maxMs: 50, jitter: 2 })).toThrow(
      'keyRetry.jitter: expected a number from 0 to 1, got 2',
    )
    expect(() => checkBackoff('keyRetry', { firstMs: 10, maxMs: 50, factor: 0.5 })).toThrow(
      'keyRetry.factor: expected a number of at least 1, got 0.5',
    )
  })
})
