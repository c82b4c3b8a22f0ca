import { describe, expect, it } from 'vitest'
import { createDatasync } from '../src/index.js'
import { ackAfter, changesOf, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { at, labels, stopOn, testScheduler } from './helpers.js'

describe('a consumer that closes', () => {
  it('in the middle of a round: the next consumer starts at once, not at the ack timeout', () => {
    const reported: string[] = []
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const watch = cold('  s---------', { s: snapshotOf(1, { 'k/1': '1' }) })
      const watchSubs = '   ^--------!'
      const stop = hot('    ---------x')
      const aEvents = '     r-|       '
      const bEvents = '     --r       '

      const sync = createDatasync(scriptedStore(watch), { ackTimeout: 5 })
      const a = sync.register('a', { prefixes: ['k/'] })
      const b = sync.register('b', { prefixes: ['k/'] })
      sync.errors$.subscribe((error) => reported.push(error.code))
      ackAfter(b.events$, 0)
      at(() => {
        a.close()
      }, 2)
      expectObservable(labels(a.events$)).toBe(aEvents, { r: 'R(startup) k/1=1' })
      expectObservable(labels(b.events$)).toBe(bEvents, { r: 'R(startup) k/1=1' })
      sync.start()
      stopOn(sync, stop)
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
    })
    expect(reported).toEqual([])
  })

  it('with a delivery in flight: it is cancelled (no ack timeout), and the name is free again', () => {
    const reported: string[] = []
    const names: (readonly string[])[] = []
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const watch = cold('  s-c-------', {
        s: snapshotOf(1, { 'k/1': '1' }),
        c: changesOf(2, { 'k/1': '2' }),
      })
      const watchSubs = '   ^--------!'
      const stop = hot('    ---------x')
      const aEvents = '     r-c-|     '

      const sync = createDatasync(scriptedStore(watch), { ackTimeout: 3 })
      const a = sync.register('a', { prefixes: ['k/'] })
      sync.errors$.subscribe((error) => reported.push(error.code))
      a.events$.subscribe((event) => {
        if (event.kind === 'resync') event.done()
      })
      at(() => {
        a.close()
        a.close()
        names.push(sync.consumers())
        sync.register('a', { prefixes: ['k/'] })
        names.push(sync.consumers())
      }, 4)
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) k/1=1',
        c: 'C(live) k/1:1>2',
      })
      sync.start()
      stopOn(sync, stop)
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
    })
    // The change delivered at 2 would have timed out at 5.
    expect(reported).toEqual([])
    expect(names).toEqual([[], ['a']])
  })
})

describe('a consumer that changes its prefixes', () => {
  it('gets the keys that entered as puts and the keys that left as deletes (x: absent), reason register', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const first = cold('  s-c-------', {
        s: snapshotOf(1, { 'a/1': '1', 'b/1': 'v' }),
        c: changesOf(2, { 'a/1': '2' }),
      })
      const second = cold('     s-c---', {
        s: snapshotOf(3, { 'a/1': '2', 'b/1': 'v' }),
        c: changesOf(4, { 'b/1': 'w', 'a/1': '3' }),
      })
      const firstSubs = '   ^---!     '
      const secondSubs = '  ----^----!'
      const stop = hot('    ---------x')
      const aEvents = '     r-c-d-e---'
      const oEvents = '     r-c---f---'

      let calls = 0
      const prefixes: (readonly string[])[] = []
      const sync = createDatasync(scriptedStore(() => (calls++ === 0 ? first : second)))
      const a = sync.register('a', { prefixes: ['a/'] })
      const other = sync.register('other', { prefixes: ['a/', 'b/'] })
      ackAfter(a.events$, 0)
      ackAfter(other.events$, 0)
      at(() => {
        a.setPrefixes(['b/'])
        prefixes.push(a.prefixes)
      }, 4)
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1=1',
        c: 'C(live) a/1:1>2',
        d: 'C(register) b/1:x>v a/1:2>x',
        e: 'C(live) b/1:v>w',
      })
      expectObservable(labels(other.events$)).toBe(oEvents, {
        r: 'R(startup) a/1=1 b/1=v',
        c: 'C(live) a/1:1>2',
        f: 'C(live) b/1:v>w a/1:2>3',
      })
      sync.start()
      stopOn(sync, stop)
      expectSubscriptions(first.subscriptions).toBe(firstSubs)
      expectSubscriptions(second.subscriptions).toBe(secondSubs)
      expect(() => {
        a.setPrefixes([])
      }).toThrow(/setPrefixes 'a': expected prefixes as a non-empty array of strings, got \[\]/)
    })
  })
})

describe('a consumer nobody listens to', () => {
  it('is not waited for; its first subscriber gets its resync from a fresh round', () => {
    const reported: string[] = []
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const first = cold('  s-c-------', {
        s: snapshotOf(1, { 'k/1': '1' }),
        c: changesOf(2, { 'k/1': '2' }),
      })
      const second = cold('     s-----', { s: snapshotOf(3, { 'k/1': '2' }) })
      const firstSubs = '   ^---!     '
      const secondSubs = '  ----^----!'
      const stop = hot('    ---------x')
      const aEvents = '     ----r-----'
      const bEvents = '     r-c-------'

      let calls = 0
      const sync = createDatasync(
        scriptedStore(() => (calls++ === 0 ? first : second)),
        {
          ackTimeout: 100,
        },
      )
      const a = sync.register('a', { prefixes: ['k/'] })
      const b = sync.register('b', { prefixes: ['k/'] })
      sync.errors$.subscribe((error) => reported.push(error.code))
      ackAfter(b.events$, 0)
      at(() => {
        ackAfter(a.events$, 0)
      }, 4)
      expectObservable(labels(a.events$), '----^-----').toBe(aEvents, { r: 'R(startup) k/1=2' })
      expectObservable(labels(b.events$)).toBe(bEvents, {
        r: 'R(startup) k/1=1',
        c: 'C(live) k/1:1>2',
      })
      sync.start()
      stopOn(sync, stop)
      expectSubscriptions(first.subscriptions).toBe(firstSubs)
      expectSubscriptions(second.subscriptions).toBe(secondSubs)
    })
    expect(reported).toEqual([])
  })

  it('when its last subscriber leaves, what it held is cancelled and its next subscriber gets a resync', () => {
    const reported: string[] = []
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const first = cold('  s-c-------', {
        s: snapshotOf(1, { 'k/1': '1' }),
        c: changesOf(2, { 'k/1': '2' }),
      })
      const second = cold('       s---', { s: snapshotOf(3, { 'k/1': '2' }) })
      const firstSubs = '   ^-----!   '
      const secondSubs = '  ------^--!'
      const stop = hot('    ---------x')
      const early = '       r-c--     '
      const earlySubs = '   ^---!     '
      const late = '        ------r---'
      const lateSubs = '    ------^---'

      let calls = 0
      const sync = createDatasync(
        scriptedStore(() => (calls++ === 0 ? first : second)),
        {
          ackTimeout: 3,
        },
      )
      const a = sync.register('a', { prefixes: ['k/'] })
      sync.errors$.subscribe((error) => reported.push(error.code))
      // The first subscriber acks the resync, not the change, and leaves at 4 (before the ack
      // timeout at 5); the second comes at 6.
      const listener = a.events$.subscribe((event) => {
        if (event.kind === 'resync') event.done()
      })
      at(() => {
        listener.unsubscribe()
      }, 4)
      at(() => {
        ackAfter(a.events$, 0)
      }, 6)
      expectObservable(labels(a.events$), earlySubs).toBe(early, {
        r: 'R(startup) k/1=1',
        c: 'C(live) k/1:1>2',
      })
      expectObservable(labels(a.events$), lateSubs).toBe(late, { r: 'R(register) k/1=2' })
      sync.start()
      stopOn(sync, stop)
      expectSubscriptions(first.subscriptions).toBe(firstSubs)
      expectSubscriptions(second.subscriptions).toBe(secondSubs)
    })
    expect(reported).toEqual([])
  })
})
