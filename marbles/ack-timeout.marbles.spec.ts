import { filter } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { createDatasync, type DatasyncError } from '../src/index.js'
import { ackAfter, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { labels, testScheduler } from './helpers.js'

const snapshot = snapshotOf(1, { 'a/1': '1', 'b/1': '1' })

describe('ack timeout', () => {
  it("under 'continue' reports the timeout and moves on to the next consumer", () => {
    const reported: string[] = []
    testScheduler().run(({ cold, expectObservable }) => {
      const sync = createDatasync(scriptedStore(cold('s', { s: snapshot })), {
        ackTimeout: 5,
        onAckFailure: 'continue',
      })
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      sync.errors$.subscribe((error: DatasyncError) => reported.push(error.code))
      ackAfter(a.events$, () => undefined) // never acknowledges
      ackAfter(b.events$, 1)
      expectObservable(labels(b.events$)).toBe('-----r', { r: 'R(startup) b/1=1' })
      expectObservable(sync.status$, '^--------!').toBe('(cr)--s', {
        c: { state: 'connecting' },
        r: { state: 'resyncing' },
        s: { state: 'in-sync' },
      })
      sync.start()
    })
    expect(reported).toEqual(['ack-timeout'])
  })

  it("under 'retry' redelivers to the same consumer after the retry delay, then goes on", () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const sync = createDatasync(scriptedStore(cold('s', { s: snapshot })), {
        ackTimeout: 3,
        onAckFailure: 'retry',
        retryDelay: 2,
        maxRetries: 3,
      })
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      let attempts = 0
      ackAfter(a.events$, () => (++attempts < 3 ? undefined : 1)) // acks the third delivery
      ackAfter(b.events$, 0)
      // a: delivered at 0, times out at 3, redelivered at 5, times out at 8, redelivered at 10, acked at 11.
      expectObservable(labels(a.events$)).toBe('r----r----r', {
        r: 'R(startup) a/1=1',
      })
      expectObservable(labels(b.events$)).toBe('-----------r', { r: 'R(startup) b/1=1' })
      sync.start()
    })
  })

  it("under 'retry' halts once the retries are used up", () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const sync = createDatasync(scriptedStore(cold('s', { s: snapshot })), {
        ackTimeout: 2,
        onAckFailure: 'retry',
        retryDelay: 1,
        maxRetries: 1,
      })
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      ackAfter(a.events$, () => undefined)
      ackAfter(b.events$, 0)
      expectObservable(labels(a.events$)).toBe('r--r', { r: 'R(startup) a/1=1' })
      expectObservable(labels(b.events$)).toBe('')
      expectObservable(sync.run$).toBe(
        '(cr)-#',
        {
          c: { state: 'connecting' },
          r: { state: 'resyncing' },
        },
        expect.objectContaining({ code: 'ack-timeout', consumer: 'a' }) as unknown,
      )
    })
  })

  it("under 'halt' stops the orchestrator, sets 'halted' and tears down the watch", () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const watch = cold('s', { s: snapshot })
      const sync = createDatasync(scriptedStore(watch), { ackTimeout: 4, onAckFailure: 'halt' })
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      ackAfter(a.events$, () => undefined)
      ackAfter(b.events$, 0)
      expectObservable(labels(b.events$)).toBe('')
      expectObservable(sync.status$.pipe()).toBe('(cr)h', {
        c: { state: 'connecting' },
        r: { state: 'resyncing' },
        h: expect.objectContaining({ state: 'halted' }) as unknown as { state: 'halted' },
      })
      sync.start()
      expectSubscriptions(watch.subscriptions).toBe('^---!')
    })
  })

  it("treats done(error) like a timeout: 'halt' stops at once", () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const sync = createDatasync(scriptedStore(cold('s', { s: snapshot })), {
        onAckFailure: 'halt',
      })
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 2, undefined, () => new Error('disk full'))
      const run = sync.run$.pipe(filter((status) => status.state !== 'connecting'))
      expectObservable(run).toBe(
        'r-#',
        {
          r: { state: 'resyncing' },
        },
        expect.objectContaining({ code: 'consumer-failed', consumer: 'a' }) as unknown,
      )
    })
  })
})
