import { BehaviorSubject } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { createDatasync, type StoreStatus } from '../src/index.js'
import { ackAfter, changesOf, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { at, drive, labels, stopOn, testScheduler } from './helpers.js'

describe('lifecycle', () => {
  it('is cold: nothing watches the store until run$ is subscribed', () => {
    testScheduler().run(({ cold, expectSubscriptions }) => {
      const watch = cold('s', { s: snapshotOf(1, {}) })
      const sync = createDatasync(scriptedStore(watch))
      sync.register('a', { prefixes: ['a/'] })
      expectSubscriptions(watch.subscriptions).toBe([])
    })
  })

  it('unsubscribing run$ tears down the store watch and sets the status to stopped', () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const values = { s: snapshotOf(1, {}), c: changesOf(2, { 'a/1': '1' }) }
      const watch = cold(' s--c ', values)
      const watchSubs = '  ^-!  '
      const runSubs = '    ^-!  '
      const statuses = '   (crs)'
      const aEvents = '    r    '

      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      expectObservable(sync.run$, runSubs).toBe(statuses, {
        c: { state: 'connecting' },
        r: { state: 'resyncing' },
        s: { state: 'in-sync' },
      })
      const states: string[] = []
      sync.status$.subscribe((status) => states.push(status.state))
      at(() => {
        expect(states).toEqual(['idle', 'connecting', 'resyncing', 'in-sync', 'stopped'])
      }, 3)
      expectObservable(labels(a.events$)).toBe(aEvents, { r: 'R(startup)' })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
    })
  })

  it('stop() ends the watch; start() again resumes with only the differences', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const watch = cold('  s       ', { s: snapshotOf(1, { 'a/1': '1' }) })
      const later = cold('       s  ', { s: snapshotOf(4, { 'a/1': '2' }) })
      const watchSubs = '   ^-!     '
      const laterSubs = '   -----^-!'
      const controls = hot('g-x--g-x ')
      const aEvents = '     r----c  '

      let calls = 0
      const sync = createDatasync(scriptedStore(() => (calls++ === 0 ? watch : later)))
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      drive(sync, controls)
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1=1',
        c: 'C(reconnect) a/1:1>2',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      expectSubscriptions(later.subscriptions).toBe(laterSubs)
    })
  })

  it('resync() starts a fresh full round for every consumer, in order', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const first = cold('  s       ', { s: snapshotOf(1, { 'a/1': '1', 'b/1': '1' }) })
      const second = cold('     s   ', { s: snapshotOf(3, { 'a/1': '1', 'b/1': '2' }) })
      const firstSubs = '   ^---!   '
      const secondSubs = '  ----^--!'
      const controls = hot('g---m--x')
      const aEvents = '     r---m   '
      const bEvents = '     -r---m  '

      let calls = 0
      const sync = createDatasync(scriptedStore(() => (calls++ === 0 ? first : second)))
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      ackAfter(a.events$, 1)
      ackAfter(b.events$, 1)
      drive(sync, controls)
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1=1',
        m: 'R(manual) a/1=1',
      })
      expectObservable(labels(b.events$)).toBe(bEvents, {
        r: 'R(startup) b/1=1',
        m: 'R(manual) b/1=2',
      })
      expectSubscriptions(first.subscriptions).toBe(firstSubs)
      expectSubscriptions(second.subscriptions).toBe(secondSubs)
    })
  })

  it('a consumer registered after start gets its own resync; the others only what changed', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const first = cold('  s-c      ', {
        s: snapshotOf(1, { 'a/1': '1', 'b/1': '1' }),
        c: changesOf(2, { 'a/1': '2' }),
      })
      const second = cold('      s   ', { s: snapshotOf(2, { 'a/1': '2', 'b/1': '1' }) })
      const firstSubs = '   ^----!   '
      const secondSubs = '  -----^-! '
      const controls = hot('g------x ')
      const register = hot('-----b   ')
      const aEvents = '     r-c      '

      let calls = 0
      const sync = createDatasync(scriptedStore(() => (calls++ === 0 ? first : second)))
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      drive(sync, controls)
      const lateEvents: string[] = []
      register.subscribe(() => {
        const b = sync.register('b', { prefixes: ['b/'] })
        ackAfter(b.events$, 0)
        b.events$.subscribe((event) => lateEvents.push(`${event.kind}:${event.reason}`))
      })
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1=1',
        c: 'C(live) a/1:1>2',
      })
      expectSubscriptions(first.subscriptions).toBe(firstSubs)
      expectSubscriptions(second.subscriptions).toBe(secondSubs)
      at(() => {
        expect(lateEvents).toEqual(['resync:register'])
      }, 6)
    })
  })

  it('follows the store: degraded while it is down, back in sync when it returns without a gap', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const watch = cold('  s         ', { s: snapshotOf(1, {}) })
      const watchSubs = '   ^--------!'
      const storeUp = hot(' -----d--r ')
      const runSubs = '     ^--------!'
      const statuses = '    (crs)d--s '

      const storeStatus = new BehaviorSubject<StoreStatus>({ state: 'ready' })
      const sync = createDatasync(scriptedStore(watch, { status$: storeStatus }))
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      storeUp.subscribe((k) => {
        storeStatus.next({ state: k === 'd' ? 'degraded' : 'ready' })
      })
      expectObservable(sync.run$, runSubs).toBe(statuses, {
        c: { state: 'connecting' },
        r: { state: 'resyncing' },
        s: { state: 'in-sync' },
        d: { state: 'degraded' },
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
    })
  })
})

describe('lifecycle: the store ends', () => {
  it('halts with a ClosedError when the store watch completes (the store was closed)', () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const watch = cold(' s----|', { s: snapshotOf(1, {}) })
      const watchSubs = '  ^----!'
      const run = '        (crs)# '

      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      expectObservable(sync.run$).toBe(
        run,
        { c: { state: 'connecting' }, r: { state: 'resyncing' }, s: { state: 'in-sync' } },
        expect.objectContaining({ code: 'closed' }) as unknown,
      )
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
    })
  })
})

describe('lifecycle: activity', () => {
  it('records rounds, deliveries, acks with their latency, and lag', () => {
    const scheduler = testScheduler()
    const seen: string[] = []
    scheduler.run(({ cold, hot, expectSubscriptions, flush }) => {
      const values = {
        s: snapshotOf(1, { 'a/1': '1' }),
        a: changesOf(2, { 'a/1': '2' }),
        b: changesOf(3, { 'a/1': '3' }),
      }
      const watch = cold(' s-ab      ', values)
      const watchSubs = '  ^--------!'
      const stop = hot('   ---------x')

      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, (event) => (event.kind === 'resync' ? 1 : 3))
      sync.activity$.subscribe((step) => {
        const at = scheduler.now()
        if (step.type === 'round') seen.push(`${at} round ${step.reason} @${step.revision}`)
        else if (step.type === 'delivered') seen.push(`${at} delivered ${step.kind} ${step.keys}`)
        else if (step.type === 'acknowledged')
          seen.push(`${at} acked ${step.kind} in ${step.latencyMs}`)
        else if (step.type === 'lag') seen.push(`${at} lag ${step.lag}`)
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
      flush()
    })
    expect(seen).toEqual([
      '0 round startup @1',
      '0 delivered resync 1',
      '1 acked resync in 1',
      '2 delivered change 1',
      '3 lag 1',
      '5 acked change in 3',
      '5 delivered change 1',
      '5 lag 0',
      '8 acked change in 3',
    ])
  })
})
