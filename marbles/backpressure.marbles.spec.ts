import { describe, it } from 'vitest'
import { createDatasync } from '../src/index.js'
import { ackAfter, changesOf, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { labels, testScheduler } from './helpers.js'

describe('backpressure', () => {
  it('coalesces changes per key behind a slow consumer: latest value, earliest prev', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const watch = cold('sabcd', {
        s: snapshotOf(1, { 'k/1': '1', 'k/2': '1' }),
        a: changesOf(2, { 'k/1': '2' }),
        b: changesOf(3, { 'k/1': '3', 'k/2': '2' }),
        c: changesOf(4, { 'k/1': '4' }),
        d: changesOf(5, { 'k/3': 'new' }),
      })
      const sync = createDatasync(scriptedStore(watch))
      const slow = sync.register('slow', { prefixes: ['k/'] })
      ackAfter(slow.events$, (event) => (event.kind === 'resync' ? 0 : 10))
      // The first change goes out at once; b, c and d wait and coalesce into one event at 11.
      expectObservable(labels(slow.events$)).toBe('ra---------c', {
        r: 'R(startup) k/1=1 k/2=1',
        a: 'C(live) k/1:1>2',
        c: 'C(live) k/2:1>2 k/1:2>4 k/3:x>new',
      })
      expectObservable(slow.lag$).toBe('0-2-3------0', { 0: 0, 2: 2, 3: 3 })
      sync.start()
    })
  })

  it('lets a consumer hold up to maxInFlight events before coalescing', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const watch = cold('sabc', {
        s: snapshotOf(1, { 'k/1': '1' }),
        a: changesOf(2, { 'k/1': '2' }),
        b: changesOf(3, { 'k/1': '3' }),
        c: changesOf(4, { 'k/1': '4' }),
      })
      const sync = createDatasync(scriptedStore(watch), { maxInFlight: 2 })
      const k = sync.register('k', { prefixes: ['k/'] })
      ackAfter(k.events$, (event) => (event.kind === 'resync' ? 0 : 5))
      expectObservable(labels(k.events$)).toBe('rab---c', {
        r: 'R(startup) k/1=1',
        a: 'C(live) k/1:1>2',
        b: 'C(live) k/1:2>3',
        c: 'C(live) k/1:3>4',
      })
      sync.start()
    })
  })

  it('a slow consumer does not hold back a fast one', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const watch = cold('s-ab', {
        s: snapshotOf(1, {}),
        a: changesOf(2, { 'k/1': '1' }),
        b: changesOf(3, { 'k/1': '2' }),
      })
      const sync = createDatasync(scriptedStore(watch))
      const slow = sync.register('slow', { prefixes: ['k/'] })
      const fast = sync.register('fast', { prefixes: ['k/'] })
      ackAfter(slow.events$, (event) => (event.kind === 'resync' ? 0 : 4))
      ackAfter(fast.events$, 0)
      expectObservable(labels(fast.events$)).toBe('r-ab', {
        r: 'R(startup)',
        a: 'C(live) k/1:x>1',
        b: 'C(live) k/1:1>2',
      })
      expectObservable(labels(slow.events$)).toBe('r-a---b', {
        r: 'R(startup)',
        a: 'C(live) k/1:x>1',
        b: 'C(live) k/1:1>2',
      })
      sync.start()
    })
  })

  it('delivers one transaction as one change event per consumer (P8)', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const watch = cold('s-t', {
        s: snapshotOf(1, { 'a/1': '1', 'b/1': '1' }),
        t: changesOf(2, { 'a/1': '2', 'a/2': '2', 'b/1': null }),
      })
      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      ackAfter(a.events$, 0)
      ackAfter(b.events$, 0)
      expectObservable(labels(a.events$)).toBe('r-t', {
        r: 'R(startup) a/1=1',
        t: 'C(live) a/1:1>2 a/2:x>2',
      })
      expectObservable(labels(b.events$)).toBe('r-t', {
        r: 'R(startup) b/1=1',
        t: 'C(live) b/1:1>x',
      })
      sync.start()
    })
  })
})
