import { describe, expect, it } from 'vitest'
import { createDatasync, failedKeys, type ConsumerEvent } from '../src/index.js'
import { ackAfter, changesOf, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { labels, stopOn, testScheduler } from './helpers.js'

/** Fails `key` in each change event carrying it, the first `times` times. */
function failing(key: string, times: number): (event: ConsumerEvent<unknown>) => unknown {
  let failures = 0
  return (event) => {
    if (event.kind !== 'change' || !event.changes.some((c) => c.key === key)) return undefined
    if (failures >= times) return undefined
    failures++
    return failedKeys({ [key]: new Error(`device busy (${failures})`) })
  }
}

describe('per-key retry', () => {
  it('retries one key with backoff, three failures then success, while other keys flow', () => {
    const reported: string[] = []
    const lags: number[] = []
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions, flush }) => {
      const values = {
        s: snapshotOf(1, { 'k/a': '0', 'k/b': '0' }),
        c: changesOf(2, { 'k/a': '1', 'k/b': '1' }),
        d: changesOf(3, { 'k/b': '2' }),
        e: changesOf(4, { 'k/b': '3' }),
      }
      // Backoff 2, 4, 8 frames (base 2, factor 2, no jitter): k/a fails at 2, 4 and 8; its
      // retries come at 4, 8 and 16, the last one applied. k/b's changes go out meanwhile.
      const watch = cold(' s-cd-e------------  ', values)
      const watchSubs = '  ^-----------------! '
      const stop = hot('   ------------------x ')
      const kEvents = '    r-cdgf--g-------h   '

      const sync = createDatasync(scriptedStore(watch), {
        keyRetry: { base: 2, factor: 2, cap: 100, jitter: 0 },
      })
      const k = sync.register('k', { prefixes: ['k/'] })
      ackAfter(k.events$, 0, undefined, failing('k/a', 3))
      k.lag$.subscribe((lag) => lags.push(lag))
      sync.errors$.subscribe((error) => reported.push(error.message))
      expectObservable(labels(k.events$)).toBe(kEvents, {
        r: 'R(startup) k/a=0 k/b=0',
        c: 'C(live) k/a:0>1 k/b:0>1',
        d: 'C(live) k/b:1>2',
        f: 'C(live) k/b:2>3',
        g: 'C(retry) k/a:0>1',
        h: 'C(retry) k/a:0>1',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
      flush()
      expect(k.failing().size).toBe(0)
    })
    expect(reported).toEqual([
      "consumer 'k' failed to apply key 'k/a' (once): device busy (1); retried in 2 ms",
      "consumer 'k' failed to apply key 'k/a' (2 times in a row): device busy (2); retried in 4 ms",
      "consumer 'k' failed to apply key 'k/a' (3 times in a row): device busy (3); retried in 8 ms",
    ])
    // The waiting key counts in the lag until it is applied.
    expect(lags).toEqual([0, 1, 0])
  })

  it('a newer change of a waiting key replaces the retried value; a delete is retried as one', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshotOf(1, { 'k/a': '0', 'k/b': '0' }),
        c: changesOf(2, { 'k/a': '1' }),
        d: changesOf(3, { 'k/a': '2' }),
        e: changesOf(4, { 'k/a': '3' }),
        f: changesOf(5, { 'k/b': null }),
        g: changesOf(6, { 'k/a': '4' }),
      }
      // k/a fails at 2 (retry due at 6); its changes at 3 and 4 are held back and folded into
      // the retry, which brings the latest value with prev the value last applied (0). k/b's
      // delete fails at 9 and is retried at 13 as a delete carrying the value still held.
      const watch = cold(' s-cde----f-------g-- ', values)
      const watchSubs = '  ^-------------------!'
      const stop = hot('   --------------------x')
      const kEvents = '    r-c---h--i---j---l   '

      const sync = createDatasync(scriptedStore(watch), {
        keyRetry: { base: 4, factor: 2, cap: 100, jitter: 0 },
      })
      const k = sync.register('k', { prefixes: ['k/'] })
      let failed = 0
      ackAfter(k.events$, 0, undefined, (event) => {
        if (event.kind !== 'change' || failed >= 2) return undefined
        const key = event.changes[0]?.key
        if (event.reason !== 'live' || key === undefined) return undefined
        failed++
        return failedKeys([[key, new Error('busy')]])
      })
      expectObservable(labels(k.events$)).toBe(kEvents, {
        r: 'R(startup) k/a=0 k/b=0',
        c: 'C(live) k/a:0>1',
        h: 'C(retry) k/a:0>3',
        i: 'C(live) k/b:0>x',
        j: 'C(retry) k/b:0>x',
        l: 'C(live) k/a:3>4',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })

  it('with maxInFlight 2, a failure that a later event already superseded is not retried', () => {
    const reported: string[] = []
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions, flush }) => {
      const values = {
        s: snapshotOf(1, { 'k/a': '0', 'k/b': '0' }),
        c: changesOf(2, { 'k/a': '1', 'k/b': '1' }),
        d: changesOf(3, { 'k/a': '2' }),
        e: changesOf(4, { 'k/b': '2' }),
      }
      // c goes out at 2 and is acked at 4 naming k/a and k/b as failed. Meanwhile d (k/a=2) went
      // out at 3 and was applied at once: k/a's failure is moot. e (k/b=2) went out at 3 too and
      // is applied at 6: k/b's retry (due at 8) has nothing left to bring.
      const watch = cold(' s-c(de)--------  ', values)
      const watchSubs = '  ^--------------! '
      const stop = hot('   ---------------x ')
      const kEvents = '    r-c(de)-------   '

      const sync = createDatasync(scriptedStore(watch), {
        maxInFlight: 2,
        keyRetry: { base: 4, factor: 2, cap: 100, jitter: 0 },
      })
      const k = sync.register('k', { prefixes: ['k/'] })
      const delay = (event: ConsumerEvent<unknown>) =>
        event.kind !== 'change'
          ? 0
          : event.changes.length === 2
            ? 2
            : event.changes[0]?.key === 'k/b'
              ? 3
              : 0
      ackAfter(k.events$, delay, undefined, (event) =>
        event.kind === 'change' && event.changes.length === 2
          ? failedKeys({ 'k/a': new Error('busy a'), 'k/b': new Error('busy b') })
          : undefined,
      )
      sync.errors$.subscribe((error) => reported.push(error.message))
      expectObservable(labels(k.events$)).toBe(kEvents, {
        r: 'R(startup) k/a=0 k/b=0',
        c: 'C(live) k/a:0>1 k/b:0>1',
        d: 'C(live) k/a:1>2',
        e: 'C(live) k/b:1>2',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
      flush()
      expect(k.failing().size).toBe(0)
    })
    // k/b's failure was real when it came (its newer value still unacknowledged); k/a's was not.
    expect(reported).toEqual([
      "consumer 'k' failed to apply key 'k/b' (once): busy b; retried in 4 ms",
    ])
  })

  it('times each key on the scheduler: base, factor, cap and jitter from the random source', () => {
    const delays: number[] = []
    testScheduler().run(({ cold, hot, expectObservable }) => {
      const values = { s: snapshotOf(1, { 'k/a': '0' }), c: changesOf(2, { 'k/a': '1' }) }
      // Each delay d is shortened by jitter * random = 0.5 * 0.5 of itself: base 8 → 6, then
      // 24 → 18, then the cap 40 → 30. Failures at 2, 8, 26; the retry at 56 is applied.
      const watch = cold(' s-c ', values)
      const stop = hot('   60ms x')
      const kEvents = '    r-c 5ms d 17ms e 29ms f '

      const sync = createDatasync(scriptedStore(watch), {
        keyRetry: { base: 8, factor: 3, cap: 40, jitter: 0.5, random: () => 0.5 },
      })
      const k = sync.register('k', { prefixes: ['k/'] })
      let failures = 0
      ackAfter(k.events$, 0, undefined, (event) =>
        event.kind === 'change' && failures++ < 3 ? failedKeys({ 'k/a': 'busy' }) : undefined,
      )
      sync.activity$.subscribe((step) => {
        if (step.type === 'key-failed') delays.push(step.delayMs)
      })
      expectObservable(labels(k.events$)).toBe(kEvents, {
        r: 'R(startup) k/a=0',
        c: 'C(live) k/a:0>1',
        d: 'C(retry) k/a:0>1',
        e: 'C(retry) k/a:0>1',
        f: 'C(retry) k/a:0>1',
      })
      sync.start()
      stopOn(sync, stop)
    })
    expect(delays).toEqual([6, 18, 30])
  })

  it('a resync round brings a waiting key at once and starts its backoff again', () => {
    const delays: number[] = []
    testScheduler().run(({ cold, hot, expectObservable }) => {
      const values = {
        s: snapshotOf(1, { 'k/a': '0', 'k/b': '0' }),
        c: changesOf(2, { 'k/a': '1' }),
        g: snapshotOf(5, { 'k/a': '1', 'k/b': '5' }, 'reconnect'),
      }
      // k/a fails at 2 and at its retry at 12 (next due at 32); the gap at 15 brings it in the
      // round's differences, with prev the value last applied; it fails once more, and its
      // backoff starts again from the base (10, due at 25).
      const watch = cold(' s-c------------g---------- ', values)
      const stop = hot('   ---------------------------x')
      const kEvents = '    r-c---------d--h---------i '

      const sync = createDatasync(scriptedStore(watch), {
        keyRetry: { base: 10, factor: 2, cap: 100, jitter: 0 },
      })
      const k = sync.register('k', { prefixes: ['k/'] })
      let failures = 0
      ackAfter(k.events$, 0, undefined, (event) =>
        event.kind === 'change' && failures++ < 3 ? failedKeys({ 'k/a': 'busy' }) : undefined,
      )
      sync.activity$.subscribe((step) => {
        if (step.type === 'key-failed') delays.push(step.delayMs)
      })
      expectObservable(labels(k.events$)).toBe(kEvents, {
        r: 'R(startup) k/a=0 k/b=0',
        c: 'C(live) k/a:0>1',
        d: 'C(retry) k/a:0>1',
        h: 'C(reconnect) k/b:0>5 k/a:0>1',
        i: 'C(retry) k/a:0>1',
      })
      sync.start()
      stopOn(sync, stop)
    })
    expect(delays).toEqual([10, 20, 10])
  })
})
