import { describe, it } from 'vitest'
import { createDatasync } from '../src/index.js'
import { ackAfter, changesOf, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { labels, stopOn, testScheduler } from './helpers.js'

describe('resync order', () => {
  it('delivers the snapshot to three consumers in registration order, each after the previous ack', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      // a acks at 3, b (delivered at 3) at 5, c (delivered at 5) at 9: in sync at 9.
      const watch = cold('   s             ', {
        s: snapshotOf(1, { 'a/1': 'A', 'b/1': 'B', 'c/1': 'C' }),
      })
      const watchSubs = '    ^------------!'
      const stop = hot('     -------------x')
      const aEvents = '      x             '
      const bEvents = '      ---y          '
      const cEvents = '      -----z        '
      const statusSubs = '   ^-----------!  '
      const statuses = '     (cr)-----s     '

      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      const c = sync.register('c', { prefixes: ['c/'] })
      ackAfter(a.events$, 3)
      ackAfter(b.events$, 2)
      ackAfter(c.events$, 4)

      expectObservable(labels(a.events$)).toBe(aEvents, { x: 'R(startup) a/1=A' })
      expectObservable(labels(b.events$)).toBe(bEvents, { y: 'R(startup) b/1=B' })
      expectObservable(labels(c.events$)).toBe(cEvents, { z: 'R(startup) c/1=C' })
      expectObservable(sync.status$, statusSubs).toBe(statuses, {
        c: { state: 'connecting' },
        r: { state: 'resyncing' },
        s: { state: 'in-sync' },
      })
      sync.start()
      stopOn(sync, stop)
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
    })
  })

  it('gives each consumer only the keys under its own prefixes, each once', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const watch = cold(' s  ', { s: snapshotOf(1, { 'a/1': '1', 'a/b/2': '2', 'b/3': '3' }) })
      const watchSubs = '  ^!'
      const stop = hot('   -x')
      const bothEvents = ' x  '

      const sync = createDatasync(scriptedStore(watch))
      const both = sync.register('both', { prefixes: ['a/', 'a/b/'] })
      ackAfter(both.events$, 0)
      expectObservable(labels(both.events$)).toBe(bothEvents, { x: 'R(startup) a/1=1 a/b/2=2' })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })

  it('holds every delta until the whole round is acknowledged (P3)', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshotOf(1, { 'a/1': '1', 'b/1': '1' }),
        c: changesOf(2, { 'a/1': '2', 'b/1': '2' }),
      }
      // a acks at 1, b gets its resync at 1 and acks at 6: only then do both see the change of frame 2.
      const watch = cold(' s-c     ', values)
      const watchSubs = '  ^------!'
      const stop = hot('   -------x')
      const aEvents = '    r-----c  '
      const bEvents = '    -r----c  '

      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      ackAfter(a.events$, 1)
      ackAfter(b.events$, 5)
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1=1',
        c: 'C(live) a/1:1>2',
      })
      expectObservable(labels(b.events$)).toBe(bEvents, {
        r: 'R(startup) b/1=1',
        c: 'C(live) b/1:1>2',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })
})
