import { describe, expect, it } from 'vitest'
import { createDatasync, type ConsumerEvent } from '../src/index.js'
import { changesOf, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { labels, testScheduler } from './helpers.js'

describe('acknowledgements', () => {
  it('done() twice is a no-op: the second call neither releases nor fails anything', () => {
    const reported: string[] = []
    testScheduler().run(({ cold, expectObservable, flush }) => {
      const watch = cold('s-ab', {
        s: snapshotOf(1, { 'k/1': '1' }),
        a: changesOf(2, { 'k/1': '2' }),
        b: changesOf(3, { 'k/1': '3' }),
      })
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
      // k never acks the first change: the second one waits until the ack timeout at 2 + 6 = 8.
      expectObservable(labels(k.events$)).toBe('r-a-----b', {
        r: 'R(startup) k/1=1',
        a: 'C(live) k/1:1>2',
        b: 'C(live) k/1:2>3',
      })
      sync.start()
      flush()
      expect(held).toHaveLength(3)
    })
    expect(reported).toEqual(['ack-timeout', 'ack-timeout'])
  })

  it('done() after the ack timed out is a no-op', () => {
    const reported: string[] = []
    testScheduler().run(({ cold, expectObservable, flush }) => {
      const sync = createDatasync(scriptedStore(cold('s', { s: snapshotOf(1, { 'a/1': '1' }) })), {
        ackTimeout: 2,
      })
      const a = sync.register('a', { prefixes: ['a/'] })
      let late: (() => void) | undefined
      a.events$.subscribe((event) => {
        late = () => {
          event.done(new Error('too late'))
        }
      })
      sync.errors$.subscribe((error) => reported.push(error.code))
      const states: string[] = []
      sync.status$.subscribe((status) => states.push(status.state))
      sync.start()
      flush()
      late?.()
      flush()
      expect(states).toEqual(['idle', 'connecting', 'resyncing', 'in-sync'])
      expectObservable(labels(a.events$)).toBe('')
    })
    expect(reported).toEqual(['ack-timeout'])
  })
})
