import { BehaviorSubject, NEVER, finalize } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { createDatasync, type StoreStatus, type WatchOptions } from '../src/index.js'
import { ackAfter, changesOf, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { drive, labels, stopOn, testScheduler } from './helpers.js'

describe('gaps', () => {
  it('a gap snapshot during a resync round cancels the round and starts over', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshotOf(1, { 'a/1': '1', 'b/1': '1' }),
        g: snapshotOf(5, { 'a/1': '2', 'b/1': '2' }, 'compacted'),
      }
      // The first round never reaches b. a still holds the first resync (delivered, not yet
      // acknowledged) when the gap comes: a change now would reach a before its resync was
      // acknowledged (P3), so the new round resyncs a again, in full; b gets the new snapshot.
      const watch = cold(' s-g      ', values)
      const watchSubs = '  ^-------!'
      const stop = hot('   --------x')
      const aEvents = '    r-c      '
      const bEvents = '    ------r  '

      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      ackAfter(a.events$, 4) // still holding the first resync when the gap comes at 2
      ackAfter(b.events$, 1)
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1=1',
        c: 'R(startup) a/1=2',
      })
      expectObservable(labels(b.events$)).toBe(bEvents, { r: 'R(startup) b/1=2' })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })

  it('heals a gap by default with the differences: puts with prev, deletes carrying the last value', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshotOf(1, { 'a/1': '1', 'a/2': '2', 'a/3': '3' }),
        c: changesOf(2, { 'a/1': '10' }),
        g: snapshotOf(9, { 'a/1': '10', 'a/2': '20', 'a/4': '4' }, 'reconnect'),
      }
      const watch = cold(' s-c--g  ', values)
      const watchSubs = '  ^------!'
      const stop = hot('   -------x')
      const aEvents = '    r-c--g  '

      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1=1 a/2=2 a/3=3',
        c: 'C(live) a/1:1>10',
        g: 'C(reconnect) a/2:2>20 a/4:x>4 a/3:3>x',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })

  it('with resyncAfterReconnect delivers a full resync round in registration order instead', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshotOf(1, { 'a/1': '1', 'b/1': '1' }),
        g: snapshotOf(9, { 'a/1': '2', 'b/1': '1' }, 'reconnect'),
      }
      const watch = cold(' s---g    ', values)
      const watchSubs = '  ^-------!'
      const stop = hot('   --------x')
      const aEvents = '    r---g    '
      const bEvents = '    --r---g  '

      const sync = createDatasync(scriptedStore(watch), { resyncAfterReconnect: true })
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      ackAfter(a.events$, 2)
      ackAfter(b.events$, 1)
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1=1',
        g: 'R(reconnect) a/1=2',
      })
      expectObservable(labels(b.events$)).toBe(bEvents, {
        r: 'R(startup) b/1=1',
        g: 'R(reconnect) b/1=1',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })

  it('an unchanged store after a gap delivers nothing', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshotOf(1, { 'a/1': '1' }),
        g: snapshotOf(1, { 'a/1': '1' }, 'watch-error'),
      }
      const watch = cold(' s--g  ', values)
      const watchSubs = '  ^---!'
      const stop = hot('   ----x')
      const aEvents = '    r     '

      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      expectObservable(labels(a.events$)).toBe(aEvents, { r: 'R(startup) a/1=1' })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })

  it('drops changes at or below the snapshot revision (no revision applied twice)', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshotOf(5, { 'a/1': '1' }),
        c: changesOf(5, { 'a/1': 'stale' }),
        d: changesOf(6, { 'a/1': '2' }),
      }
      const watch = cold(' s-cd  ', values)
      const watchSubs = '  ^---!'
      const stop = hot('   ----x')
      const aEvents = '    r--d  '

      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1=1',
        d: 'C(live) a/1:1>2',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })
})

describe('gaps: resuming stores', () => {
  it('with resyncAfterReconnect, the watch is asked to relist after a reconnection, and nothing restarts it', () => {
    const asked: WatchOptions[] = []
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      // Down at 2, back at 4: the store's own watch lists afresh (a `reconnect` snapshot); the
      // orchestrator never replaces the watch, which would race the one that resumed.
      const watch = cold('  s---g   ', {
        s: snapshotOf(1, { 'a/1': '1' }),
        g: snapshotOf(7, { 'a/1': '2' }, 'reconnect'),
      })
      const watchSubs = '   ^-----! '
      const storeUp = hot(' --d-r   ')
      const stop = hot('    ------x ')
      const aEvents = '     r---R   '

      const storeStatus = new BehaviorSubject<StoreStatus>({ state: 'ready' })
      const store = scriptedStore(
        (_, options) => {
          asked.push(options)
          return watch
        },
        { status$: storeStatus, capabilities: { resumable: true } },
      )
      const sync = createDatasync(store, { resyncAfterReconnect: true })
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      storeUp.subscribe((k) => {
        storeStatus.next({ state: k === 'd' ? 'degraded' : 'ready' })
      })
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1=1',
        R: 'R(reconnect) a/1=2',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
    expect(asked).toEqual([{ relistOnReconnect: true }])
  })

  it('a restart asked for while the last watch is torn down replaces the new watch: one at a time', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      // The first watch's end brings the store back to ready (as a store's health does when a
      // broken watch goes away), the orchestrator back in sync, and a status subscriber asks for
      // another resync from inside that teardown. The second watch gives way to the third at
      // once; entered again from its own unsubscribe, switchMap would keep both.
      const storeStatus = new BehaviorSubject<StoreStatus>({ state: 'ready' })
      const w1 = cold('     s      ', { s: snapshotOf(1, { 'a/1': '1' }) })
      const w2 = cold('        s   ', { s: snapshotOf(5, { 'a/1': '2' }) })
      const w3 = cold('        s   ', { s: snapshotOf(5, { 'a/1': '2' }) })
      const w1Subs = '      ^--!   '
      const w2Subs = '      ---(^!)'
      const w3Subs = '      ---^---!'
      const storeUp = hot(' --d    ')
      const control = hot(' ---m---x')
      const aEvents = '     r--R   '

      const backUp = () => {
        storeStatus.next({ state: 'ready' })
      }
      const watches = [w1.pipe(finalize(backUp)), w2, w3]
      const store = scriptedStore(() => watches.shift() ?? NEVER, {
        status$: storeStatus,
        capabilities: { resumable: true },
      })
      const sync = createDatasync(store)
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      let degraded = false
      sync.status$.subscribe((status) => {
        if (status.state === 'degraded') degraded = true
        else if (status.state === 'in-sync' && degraded) {
          degraded = false
          sync.resync()
        }
      })
      storeUp.subscribe(() => {
        storeStatus.next({ state: 'degraded' })
      })
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1=1',
        R: 'R(manual) a/1=2',
      })
      expectSubscriptions(w1.subscriptions).toBe(w1Subs)
      expectSubscriptions(w2.subscriptions).toBe(w2Subs)
      expectSubscriptions(w3.subscriptions).toBe(w3Subs)
      sync.start()
      drive(sync, control)
    })
  })

  it('without it, a resuming store just goes back in sync: no new snapshot', () => {
    testScheduler().run(({ cold, hot, expectSubscriptions }) => {
      const watch = cold('  s      ', { s: snapshotOf(1, {}) })
      const watchSubs = '   ^----! '
      const storeUp = hot(' --d-r  ')
      const stop = hot('    -----x ')

      const storeStatus = new BehaviorSubject<StoreStatus>({ state: 'ready' })
      const store = scriptedStore(watch, {
        status$: storeStatus,
        capabilities: { resumable: true },
      })
      const sync = createDatasync(store)
      ackAfter(sync.register('a', { prefixes: ['a/'] }).events$, 0)
      storeUp.subscribe((k) => {
        storeStatus.next({ state: k === 'd' ? 'degraded' : 'ready' })
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })
})
