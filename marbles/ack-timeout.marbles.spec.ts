import { filter } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { createDatasync, type DatasyncError } from '../src/index.js'
import { ackAfter, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { labels, stopOn, testScheduler } from './helpers.js'

const snapshot = snapshotOf(1, { 'a/1': '1', 'b/1': '1' })

describe('ack timeout', () => {
  it("under 'continue' reports the timeout and moves on to the next consumer", () => {
    const reported: string[] = []
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      // a never acknowledges: its resync times out at 5, b gets its own and acks at 6.
      const watch = cold('  s           ', { s: snapshot })
      const watchSubs = '   ^---------! '
      const stop = hot('    ----------x ')
      const bEvents = '     -----r      '
      const statusSubs = '  ^--------!  '
      const statuses = '    (cr)--s     '

      const sync = createDatasync(scriptedStore(watch), {
        ackTimeout: 5,
        onAckFailure: 'continue',
      })
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      sync.errors$.subscribe((error: DatasyncError) => reported.push(error.code))
      ackAfter(a.events$, () => undefined) // never acknowledges
      ackAfter(b.events$, 1)
      expectObservable(labels(b.events$)).toBe(bEvents, { r: 'R(startup) b/1=1' })
      expectObservable(sync.status$, statusSubs).toBe(statuses, {
        c: { state: 'connecting' },
        r: { state: 'resyncing' },
        s: { state: 'in-sync' },
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
    expect(reported).toEqual(['ack-timeout'])
  })

  it("under 'retry' redelivers to the same consumer after the retry delay, then goes on", () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      // a: delivered at 0, times out at 3, redelivered at 5, times out at 8, redelivered at 10, acked at 11.
      const watch = cold(' s            ', { s: snapshot })
      const watchSubs = '  ^-----------!'
      const stop = hot('   ------------x')
      const aEvents = '    r----r----r  '
      const bEvents = '    -----------r '

      const sync = createDatasync(scriptedStore(watch), {
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
      expectObservable(labels(a.events$)).toBe(aEvents, { r: 'R(startup) a/1=1' })
      expectObservable(labels(b.events$)).toBe(bEvents, { r: 'R(startup) b/1=1' })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })

  it("under 'retry' halts once the retries are used up", () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      // a: delivered at 0, times out at 2, redelivered at 3, times out at 5: the run halts.
      const watch = cold(' s     ', { s: snapshot })
      const watchSubs = '  ^----!'
      const aEvents = '    r--r  '
      const bEvents = '          '
      const run = '        (cr)-# '

      const sync = createDatasync(scriptedStore(watch), {
        ackTimeout: 2,
        onAckFailure: 'retry',
        retryDelay: 1,
        maxRetries: 1,
      })
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      ackAfter(a.events$, () => undefined)
      ackAfter(b.events$, 0)
      expectObservable(labels(a.events$)).toBe(aEvents, { r: 'R(startup) a/1=1' })
      expectObservable(labels(b.events$)).toBe(bEvents)
      expectObservable(sync.run$).toBe(
        run,
        {
          c: { state: 'connecting' },
          r: { state: 'resyncing' },
        },
        expect.objectContaining({ code: 'ack-timeout', consumer: 'a' }) as unknown,
      )
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
    })
  })

  it("under 'halt' stops the orchestrator, sets 'halted' and tears down the watch", () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      // a never acknowledges: the timeout at 4 halts the run.
      const watch = cold(' s     ', { s: snapshot })
      const watchSubs = '  ^---! '
      const bEvents = '          '
      const statuses = '   (cr)h '

      const sync = createDatasync(scriptedStore(watch), { ackTimeout: 4, onAckFailure: 'halt' })
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      ackAfter(a.events$, () => undefined)
      ackAfter(b.events$, 0)
      expectObservable(labels(b.events$)).toBe(bEvents)
      expectObservable(sync.status$.pipe()).toBe(statuses, {
        c: { state: 'connecting' },
        r: { state: 'resyncing' },
        h: expect.objectContaining({ state: 'halted' }) as unknown as { state: 'halted' },
      })
      sync.start()
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
    })
  })

  it("treats done(error) like a timeout: 'halt' stops at once", () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      // a fails its resync at 2 with done(error).
      const watch = cold(' s   ', { s: snapshot })
      const watchSubs = '  ^-! '
      const run = '        r-#  '

      const sync = createDatasync(scriptedStore(watch), { onAckFailure: 'halt' })
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 2, undefined, () => new Error('disk full'))
      expectObservable(sync.run$.pipe(filter((status) => status.state !== 'connecting'))).toBe(
        run,
        {
          r: { state: 'resyncing' },
        },
        expect.objectContaining({ code: 'consumer-failed', consumer: 'a' }) as unknown,
      )
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
    })
  })
})
