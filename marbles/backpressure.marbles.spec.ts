import { describe, it } from 'vitest'
import { createDatasync } from '../src/index.js'
import { ackAfter, changesOf, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { labels, stopOn, testScheduler } from './helpers.js'

describe('backpressure', () => {
  it('coalesces changes per key behind a slow consumer: latest value, earliest prev', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshotOf(1, { 'k/1': '1', 'k/2': '1' }),
        a: changesOf(2, { 'k/1': '2' }),
        b: changesOf(3, { 'k/1': '3', 'k/2': '2' }),
        c: changesOf(4, { 'k/1': '4' }),
        d: changesOf(5, { 'k/3': 'new' }),
      }
      // The first change goes out at once; b, c and d wait and coalesce into one event at 11.
      const watch = cold(' sabcd        ', values)
      const watchSubs = '  ^-----------!'
      const stop = hot('   ------------x')
      const slowEvents = ' ra---------c '
      const slowLag = '    0-2-3------0 '

      const sync = createDatasync(scriptedStore(watch))
      const slow = sync.register('slow', { prefixes: ['k/'] })
      ackAfter(slow.events$, (event) => (event.kind === 'resync' ? 0 : 10))
      expectObservable(labels(slow.events$)).toBe(slowEvents, {
        r: 'R(startup) k/1=1 k/2=1',
        a: 'C(live) k/1:1>2',
        c: 'C(live) k/2:1>2 k/1:2>4 k/3:x>new',
      })
      expectObservable(slow.lag$).toBe(slowLag, { 0: 0, 2: 2, 3: 3 })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })

  it('lets a consumer hold up to maxInFlight events before coalescing', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshotOf(1, { 'k/1': '1' }),
        a: changesOf(2, { 'k/1': '2' }),
        b: changesOf(3, { 'k/1': '3' }),
        c: changesOf(4, { 'k/1': '4' }),
      }
      const watch = cold(' sabc    ', values)
      const watchSubs = '  ^------!'
      const stop = hot('   -------x')
      const kEvents = '    rab---c '

      const sync = createDatasync(scriptedStore(watch), { maxInFlight: 2 })
      const k = sync.register('k', { prefixes: ['k/'] })
      ackAfter(k.events$, (event) => (event.kind === 'resync' ? 0 : 5))
      expectObservable(labels(k.events$)).toBe(kEvents, {
        r: 'R(startup) k/1=1',
        a: 'C(live) k/1:1>2',
        b: 'C(live) k/1:2>3',
        c: 'C(live) k/1:3>4',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })

  it('a slow consumer does not hold back a fast one', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshotOf(1, {}),
        a: changesOf(2, { 'k/1': '1' }),
        b: changesOf(3, { 'k/1': '2' }),
      }
      const watch = cold(' s-ab    ', values)
      const watchSubs = '  ^------!'
      const stop = hot('   -------x')
      const fastEvents = ' r-ab    '
      const slowEvents = ' r-a---b '

      const sync = createDatasync(scriptedStore(watch))
      const slow = sync.register('slow', { prefixes: ['k/'] })
      const fast = sync.register('fast', { prefixes: ['k/'] })
      ackAfter(slow.events$, (event) => (event.kind === 'resync' ? 0 : 4))
      ackAfter(fast.events$, 0)
      expectObservable(labels(fast.events$)).toBe(fastEvents, {
        r: 'R(startup)',
        a: 'C(live) k/1:x>1',
        b: 'C(live) k/1:1>2',
      })
      expectObservable(labels(slow.events$)).toBe(slowEvents, {
        r: 'R(startup)',
        a: 'C(live) k/1:x>1',
        b: 'C(live) k/1:1>2',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })

  it('delivers one transaction as one change event per consumer (P8)', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshotOf(1, { 'a/1': '1', 'b/1': '1' }),
        t: changesOf(2, { 'a/1': '2', 'a/2': '2', 'b/1': null }),
      }
      const watch = cold(' s-t  ', values)
      const watchSubs = '  ^--!'
      const stop = hot('   ---x')
      const aEvents = '    r-t  '
      const bEvents = '    r-t  '

      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      ackAfter(a.events$, 0)
      ackAfter(b.events$, 0)
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1=1',
        t: 'C(live) a/1:1>2 a/2:x>2',
      })
      expectObservable(labels(b.events$)).toBe(bEvents, {
        r: 'R(startup) b/1=1',
        t: 'C(live) b/1:1>x',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })
})
