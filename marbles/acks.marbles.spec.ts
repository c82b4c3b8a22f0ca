import { describe, expect, it } from 'vitest'
import { createDatasync, type ConsumerEvent } from '../src/index.js'
import { changesOf, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { labels, stopOn, testScheduler } from './helpers.js'

describe('acknowledgements', () => {
  it('done() twice is a no-op: the second call neither releases nor fails anything', () => {
    const reported: string[] = []
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions, flush }) => {
      const values = {
        s: snapshotOf(1, { 'k/1': '1' }),
        a: changesOf(2, { 'k/1': '2' }),
        b: changesOf(3, { 'k/1': '3' }),
      }
      // k never acks the first change: the second one waits until the ack timeout at 2 + 6 = 8;
      // its own times out at 14.
      const watch = cold(' s-ab            ', values)
      const watchSubs = '  ^--------------!'
      const stop = hot('   ---------------x')
      const kEvents = '    r-a-----b       '

      const sync = createDatasync(scriptedStore(watch), { ackTimeout: 6 })
      const k = sync.register('k', { prefixes: ['k/'] })
      const b = sync.register('b', { prefixes: ['k/'] })
      sync.errors$.subscribe((error) => reported.push(error.code))
      const held: ConsumerEvent<unknown>[] = []
      k.events$.subscribe((event) => {
        held.push(event)
        if (event.kind === 'resync') {
          event.done()
          event.done() // must not count as the ack of the next event
          event.done(new Error('late second call'))
        }
      })
      b.events$.subscribe((event) => {
        event.done()
      })
      expectObservable(labels(k.events$)).toBe(kEvents, {
        r: 'R(startup) k/1=1',
        a: 'C(live) k/1:1>2',
        b: 'C(live) k/1:2>3',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
      flush()
      expect(held).toHaveLength(3)
    })
    expect(reported).toEqual(['ack-timeout', 'ack-timeout'])
  })

  it('done() after the ack timed out is a no-op', () => {
    const reported: string[] = []
    const states: string[] = []
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      // The ack times out at 2; the late done() comes at 4, while the run goes on.
      const watch = cold(' s     ', { s: snapshotOf(1, { 'a/1': '1' }) })
      const watchSubs = '  ^-----!'
      const late = hot('   ----l  ')
      const stop = hot('   ------x')
      const aEvents = '    r      '

      const sync = createDatasync(scriptedStore(watch), { ackTimeout: 2 })
      const a = sync.register('a', { prefixes: ['a/'] })
      let done: ((error: unknown) => void) | undefined
      a.events$.subscribe((event) => {
        done = (error) => {
          event.done(error)
        }
      })
      late.subscribe(() => done?.(new Error('too late')))
      sync.errors$.subscribe((error) => reported.push(error.code))
      sync.status$.subscribe((status) => states.push(status.state))
      expectObservable(labels(a.events$)).toBe(aEvents, { r: 'R(startup) a/1=1' })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
    expect(states).toEqual(['idle', 'connecting', 'resyncing', 'in-sync', 'stopped'])
    expect(reported).toEqual(['ack-timeout'])
  })
})
