import { concatMap } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { describe, expect, it } from 'vitest'
import { JobQueue } from '../../src/backends/filedb/jobs.js'

// The file store's job queue: one job at a time, in order. Its jobs are observables made when
// their turn comes, so a TestScheduler drives it in virtual time.

function testScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => {
    expect(actual).toEqual(expected)
  })
}

describe('filedb job queue', () => {
  it('runs one job at a time, in the order queued; each result is the job’s last value', () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const queue = new JobQueue()
      const a = cold('                           --a|')
      const b = cold('                              -b|')
      const c = cold('                                x-y|')
      const resultA = queue.enqueue(() => a)
      const resultB = queue.enqueue(() => b)
      const resultC = queue.enqueue(() => c)
      expectObservable(resultA).toBe('           ---(a|)')
      expectObservable(resultB).toBe('           -----(b|)')
      expectObservable(resultC).toBe('           --------(y|)')
      expectSubscriptions(a.subscriptions).toBe('^--!')
      expectSubscriptions(b.subscriptions).toBe('---^-!')
      expectSubscriptions(c.subscriptions).toBe('-----^--!')
    })
  })

  it('a job that fails gives its error to its result only: the next job runs', () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const queue = new JobQueue()
      const broken = new Error('broken')
      const failing = cold('                                  -#', undefined, broken)
      const next = cold('                                      -n|')
      expectObservable(queue.enqueue(() => failing)).toBe('   -#', undefined, broken)
      expectObservable(queue.enqueue(() => next)).toBe('      ---(n|)')
      expectSubscriptions(failing.subscriptions).toBe('       ^!')
      expectSubscriptions(next.subscriptions).toBe('          -^-!')
    })
  })

  it('a job runs whether its result is subscribed or not; one queued while idle starts at once', () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const queue = new JobQueue()
      const unwatched = cold('                            --u|')
      const trigger = cold('                              -----t')
      const late = cold('                                      -l|')
      queue.enqueue(() => unwatched)
      const lateResult = trigger.pipe(concatMap(() => queue.enqueue(() => late)))
      expectObservable(lateResult).toBe('                 -------l')
      expectSubscriptions(unwatched.subscriptions).toBe(' ^--!')
      expectSubscriptions(late.subscriptions).toBe('      -----^-!')
    })
  })

  it('makes each job when its turn comes, and idle() waits for the jobs queued before it', async () => {
    const queue = new JobQueue()
    const made: string[] = []
    let finishFirst!: () => void
    const first = new Promise<void>((resolve) => {
      finishFirst = resolve
    })
    queue.enqueue(() => {
      made.push('first')
      return first
    })
    queue.enqueue(() => {
      made.push('second')
      return Promise.resolve()
    })
    let idle = false
    const waiting = queue.idle().then(() => {
      idle = true
    })
    await Promise.resolve()
    expect(made).toEqual(['first'])
    expect(idle).toBe(false)
    finishFirst()
    await waiting
    expect(made).toEqual(['first', 'second'])
    expect(idle).toBe(true)
  })
})
