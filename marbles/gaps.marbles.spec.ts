import { BehaviorSubject } from 'rxjs'
import { describe, it } from 'vitest'
import { createDatasync, type StoreStatus } from '../src/index.js'
import { ackAfter, changesOf, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { labels, testScheduler } from './helpers.js'

describe('gaps', () => {
  it('a gap snapshot during a resync round cancels the round and starts over', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const watch = cold('s-g', {
        s: snapshotOf(1, { 'a/1': '1', 'b/1': '1' }),
        g: snapshotOf(5, { 'a/1': '2', 'b/1': '2' }, 'compacted'),
      })
      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      ackAfter(a.events$, 4) // still holding the first resync when the gap comes at 2
      ackAfter(b.events$, 1)
      // The first round never reaches b. a already holds the first resync (delivered, not yet
      // acknowledged), so the new round brings it only the difference; b gets the new snapshot.
      expectObservable(labels(a.events$)).toBe('r-c', {
        r: 'R(startup) a/1=1',
        c: 'C(gap) a/1:1>2',
      })
      expectObservable(labels(b.events$)).toBe('------r', { r: 'R(startup) b/1=2' })
      sync.start()
    })
  })

  it('heals a gap by default with the differences: puts with prev, deletes carrying the last value', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const watch = cold('s-c--g', {
        s: snapshotOf(1, { 'a/1': '1', 'a/2': '2', 'a/3': '3' }),
        c: changesOf(2, { 'a/1': '10' }),
        g: snapshotOf(9, { 'a/1': '10', 'a/2': '20', 'a/4': '4' }, 'reconnect'),
      })
      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      expectObservable(labels(a.events$)).toBe('r-c--g', {
        r: 'R(startup) a/1=1 a/2=2 a/3=3',
        c: 'C(live) a/1:1>10',
        g: 'C(reconnect) a/2:2>20 a/4:x>4 a/3:3>x',
      })
      sync.start()
    })
  })

  it('with resyncAfterReconnect delivers a full resync round in registration order instead', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const watch = cold('s---g', {
        s: snapshotOf(1, { 'a/1': '1', 'b/1': '1' }),
        g: snapshotOf(9, { 'a/1': '2', 'b/1': '1' }, 'reconnect'),
      })
      const sync = createDatasync(scriptedStore(watch), { resyncAfterReconnect: true })
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      ackAfter(a.events$, 2)
      ackAfter(b.events$, 1)
      expectObservable(labels(a.events$)).toBe('r---g', {
        r: 'R(startup) a/1=1',
        g: 'R(reconnect) a/1=2',
      })
      expectObservable(labels(b.events$)).toBe('--r---g', {
        r: 'R(startup) b/1=1',
        g: 'R(reconnect) b/1=1',
      })
      sync.start()
    })
  })

  it('an unchanged store after a gap delivers nothing', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const watch = cold('s--g', {
        s: snapshotOf(1, { 'a/1': '1' }),
        g: snapshotOf(1, { 'a/1': '1' }, 'watch-error'),
      })
      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      expectObservable(labels(a.events$)).toBe('r', { r: 'R(startup) a/1=1' })
      sync.start()
    })
  })

  it('drops changes at or below the snapshot revision (no revision applied twice)', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const watch = cold('s-cd', {
        s: snapshotOf(5, { 'a/1': '1' }),
        c: changesOf(5, { 'a/1': 'stale' }),
        d: changesOf(6, { 'a/1': '2' }),
      })
      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      expectObservable(labels(a.events$)).toBe('r--d', {
        r: 'R(startup) a/1=1',
        d: 'C(live) a/1:1>2',
      })
      sync.start()
    })
  })
})

describe('gaps: resuming stores', () => {
  it('with resyncAfterReconnect, a store that resumes without a snapshot is asked for one', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const storeStatus = new BehaviorSubject<StoreStatus>({ state: 'ready' })
      const first = cold('s', { s: snapshotOf(1, { 'a/1': '1' }) })
      const second = cold('s', { s: snapshotOf(7, { 'a/1': '2' }) })
      let calls = 0
      const store = scriptedStore(() => (calls++ === 0 ? first : second), {
        status$: storeStatus,
        capabilities: { resumable: true },
      })
      const sync = createDatasync(store, { resyncAfterReconnect: true })
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      hot('--d-r').subscribe((k) => {
        storeStatus.next({ state: k === 'd' ? 'degraded' : 'ready' })
      })
      expectObservable(labels(a.events$)).toBe('r---R', {
        r: 'R(startup) a/1=1',
        R: 'R(reconnect) a/1=2',
      })
      expectSubscriptions(first.subscriptions).toBe('^---!')
      expectSubscriptions(second.subscriptions).toBe('----^')
      sync.start()
    })
  })

  it('without it, a resuming store just goes back in sync: no new snapshot', () => {
    testScheduler().run(({ cold, hot, expectSubscriptions }) => {
      const storeStatus = new BehaviorSubject<StoreStatus>({ state: 'ready' })
      const watch = cold('s', { s: snapshotOf(1, {}) })
      const store = scriptedStore(watch, {
        status$: storeStatus,
        capabilities: { resumable: true },
      })
      const sync = createDatasync(store)
      ackAfter(sync.register('a', { prefixes: ['a/'] }).events$, 0)
      hot('--d-r').subscribe((k) => {
        storeStatus.next({ state: k === 'd' ? 'degraded' : 'ready' })
      })
      expectSubscriptions(watch.subscriptions).toBe('^')
      sync.start()
    })
  })
})
