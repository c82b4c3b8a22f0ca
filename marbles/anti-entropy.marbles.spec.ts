import { describe, expect, it } from 'vitest'
import { createDatasync, type StoreEvent } from '../src/index.js'
import { ackAfter, changesOf, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { labels, stopOn, testScheduler } from './helpers.js'

describe('anti-entropy', () => {
  it('relists every period and delivers only the differences the feed lost', () => {
    const rounds: string[] = []
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      // The first watch's feed loses a/2's write; the relist at 10 finds it (and nothing else
      // differs); the relist at 20 finds nothing.
      const first = cold(' s-c        ', {
        s: snapshotOf(1, { 'a/1': '1' }),
        c: changesOf(2, { 'a/1': '2' }),
      })
      const second = cold('t          ', { t: snapshotOf(4, { 'a/1': '2', 'a/2': 'x' }) })
      const third = cold(' t          ', { t: snapshotOf(4, { 'a/1': '2', 'a/2': 'x' }) })
      const firstSubs = '  ^---------!           '
      const secondSubs = ' ----------^---------!  '
      const thirdSubs = '  --------------------^-!'
      const stop = hot('   ----------------------x')
      const aEvents = '    r-c-------d            '

      const watches = [first, second, third]
      let n = 0
      const store = scriptedStore<string>(() => watches[n++] ?? cold<StoreEvent<string>>('-'))
      const sync = createDatasync(store, { antiEntropy: 10 })
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      sync.activity$.subscribe((step) => {
        if (step.type === 'round') rounds.push(step.reason)
      })
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1=1',
        c: 'C(live) a/1:1>2',
        d: 'C(gap) a/2:x>x',
      })
      expectSubscriptions(first.subscriptions).toBe(firstSubs)
      expectSubscriptions(second.subscriptions).toBe(secondSubs)
      expectSubscriptions(third.subscriptions).toBe(thirdSubs)
      sync.start()
      stopOn(sync, stop)
    })
    expect(rounds).toEqual(['startup', 'gap', 'gap'])
  })

  it('is off by default: one watch for the whole run', () => {
    testScheduler().run(({ cold, hot, expectSubscriptions }) => {
      const watch = cold(' s', { s: snapshotOf(1, { 'a/1': '1' }) })
      const stop = hot('   100ms x')
      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'] })
      ackAfter(a.events$, 0)
      expectSubscriptions(watch.subscriptions).toBe('^ 99ms !')
      sync.start()
      stopOn(sync, stop)
    })
  })
})
