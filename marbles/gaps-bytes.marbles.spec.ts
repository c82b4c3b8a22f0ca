import { describe, expect, it } from 'vitest'
import { CodecError, createDatasync, json, revision, type KeyValue } from '../src/index.js'
import { ackAfter, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { labels, stopOn, testScheduler } from './helpers.js'

// An eager consumer of bytes keeps its values decoded and only a fingerprint of their bytes:
// these specs pin how a gap snapshot is compared with that view.

const bytes = (text: string) => new TextEncoder().encode(text)

/** A snapshot of byte values, each key at its own revision. */
function snapshot(
  rev: number,
  items: Record<string, [string, number]>,
): ReturnType<typeof snapshotOf<Uint8Array>> {
  const base = snapshotOf<Uint8Array>(rev, {}, 'reconnect')
  return {
    ...base,
    items: Object.entries(items).map(([key, [text, at]]): KeyValue<Uint8Array> => ({
      key,
      value: bytes(text),
      revision: revision(at),
    })),
  }
}

describe('gaps over bytes: an eager consumer compares by fingerprint', () => {
  it('the same bytes at the same revision: nothing', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshot(3, { 'a/1': ['{"n":1}', 3] }),
        g: snapshot(4, { 'a/1': ['{"n":1}', 3] }),
      }
      const watch = cold(' s--g  ', values)
      const watchSubs = '  ^---!'
      const stop = hot('   ----x')
      const aEvents = '    r     '

      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'], codec: json<{ n: number }>() })
      ackAfter(a.events$, 0)
      expectObservable(labels(a.events$)).toBe(aEvents, { r: 'R(startup) a/1={"n":1}' })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })

  it('the same bytes written again at another revision: nothing', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshot(3, { 'a/1': ['{"n":1}', 3] }),
        g: snapshot(9, { 'a/1': ['{"n":1}', 8] }),
      }
      const watch = cold(' s--g  ', values)
      const watchSubs = '  ^---!'
      const stop = hot('   ----x')
      const aEvents = '    r     '

      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'], codec: json<{ n: number }>() })
      ackAfter(a.events$, 0)
      expectObservable(labels(a.events$)).toBe(aEvents, { r: 'R(startup) a/1={"n":1}' })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })

  it('other bytes: a change with the value the consumer held as prev', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshot(3, { 'a/1': ['{"n":1}', 3], 'a/2': ['{"n":2}', 3] }),
        g: snapshot(9, { 'a/1': ['{"n":10}', 8], 'a/2': ['{"n":2}', 3] }),
      }
      const watch = cold(' s--g  ', values)
      const watchSubs = '  ^---!'
      const stop = hot('   ----x')
      const aEvents = '    r--g  '

      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'], codec: json<{ n: number }>() })
      ackAfter(a.events$, 0)
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1={"n":1} a/2={"n":2}',
        g: 'C(reconnect) a/1:{"n":1}>{"n":10}',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })

  it('the same revision but other bytes (a store whose history was reset): a change', () => {
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const values = {
        s: snapshot(3, { 'a/1': ['{"n":1}', 3] }),
        g: snapshot(3, { 'a/1': ['{"n":7}', 3] }),
      }
      const watch = cold(' s--g  ', values)
      const watchSubs = '  ^---!'
      const stop = hot('   ----x')
      const aEvents = '    r--g  '

      const sync = createDatasync(scriptedStore(watch))
      const a = sync.register('a', { prefixes: ['a/'], codec: json<{ n: number }>() })
      ackAfter(a.events$, 0)
      expectObservable(labels(a.events$)).toBe(aEvents, {
        r: 'R(startup) a/1={"n":1}',
        g: 'C(reconnect) a/1:{"n":1}>{"n":7}',
      })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
    })
  })

  it('undecodable bytes after a gap: reported once, the consumer keeps its last good value', () => {
    const errors: unknown[] = []
    let view: ReadonlyMap<string, KeyValue<{ n: number }>> | undefined
    testScheduler().run(({ cold, hot, expectObservable, expectSubscriptions, flush }) => {
      const values = {
        s: snapshot(3, { 'a/1': ['{"n":1}', 3] }),
        g: snapshot(9, { 'a/1': ['{"n":', 8] }),
      }
      const watch = cold(' s--g  ', values)
      const watchSubs = '  ^---!'
      const stop = hot('   ----x')
      const aEvents = '    r     '

      const sync = createDatasync(scriptedStore(watch))
      sync.errors$.subscribe((error) => errors.push(error))
      const a = sync.register('a', { prefixes: ['a/'], codec: json<{ n: number }>() })
      ackAfter(a.events$, 0)
      expectObservable(labels(a.events$)).toBe(aEvents, { r: 'R(startup) a/1={"n":1}' })
      expectSubscriptions(watch.subscriptions).toBe(watchSubs)
      sync.start()
      stopOn(sync, stop)
      flush()
      view = a.view()
    })
    expect(errors).toHaveLength(1)
    expect(errors[0]).toBeInstanceOf(CodecError)
    expect(view?.get('a/1')?.value).toEqual({ n: 1 })
  })
})
