import { describe, it } from 'vitest'
import { createDatasync } from '../src/index.js'
import { ackAfter, changesOf, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { labels, testScheduler } from './helpers.js'

describe('resync order', () => {
  it('delivers the snapshot to three consumers in registration order, each after the previous ack', () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const watch = cold('s', { s: snapshotOf(1, { 'a/1': 'A', 'b/1': 'B', 'c/1': 'C' }) })
      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      const c = sync.register('c', { prefixes: ['c/'] })
      ackAfter(a.events$, 3)
      ackAfter(b.events$, 2)
      ackAfter(c.events$, 4)

      expectObservable(labels(a.events$)).toBe('x', { x: 'R(startup) a/1=A' })
      expectObservable(labels(b.events$)).toBe('---y', { y: 'R(startup) b/1=B' })
      expectObservable(labels(c.events$)).toBe('-----z', { z: 'R(startup) c/1=C' })
      expectObservable(sync.status$, '^-----------!').toBe('(cr)-----s', {
        c: { state: 'connecting' },
        r: { state: 'resyncing' },
        s: { state: 'in-sync' },
      })
      sync.start()
      expectSubscriptions(watch.subscriptions).toBe('^')
    })
  })

  it('gives each consumer only the keys under its own prefixes, each once', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const watch = cold('s', { s: snapshotOf(1, { 'a/1': '1', 'a/b/2': '2', 'b/3': '3' }) })
      const sync = createDatasync(scriptedStore(watch))
      const both = sync.register('both', { prefixes: ['a/', 'a/b/'] })
      ackAfter(both.events$, 0)
      expectObservable(labels(both.events$)).toBe('x', { x: 'R(startup) a/1=1 a/b/2=2' })
      sync.start()
    })
  })

  it('holds every delta until the whole round is acknowledged (P3)', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const watch = cold('s-c', {
        s: snapshotOf(1, { 'a/1': '1', 'b/1': '1' }),
        c: changesOf(2, { 'a/1': '2', 'b/1': '2' }),
      })
      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      const b = sync.register('b', { prefixes: ['b/'] })
      ackAfter(a.events$, 1)
      ackAfter(b.events$, 5)

      // a acks at 1, b gets its resync at 1 and acks at 6: only then do both see the change of frame 2.
      expectObservable(labels(a.events$)).toBe('r-----c', {
        r: 'R(startup) a/1=1',
        c: 'C(live) a/1:1>2',
      })
      expectObservable(labels(b.events$)).toBe('-r----c', {
        r: 'R(startup) b/1=1',
        c: 'C(live) b/1:1>2',
      })
      sync.start()
    })
  })
})
