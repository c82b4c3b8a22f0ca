import { VirtualTimeScheduler } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { describe, expect, it } from 'vitest'
import { createMemoryStore } from '../../src/backends/memory/index.js'
import { ClosedError, DatasyncError, UnavailableError, isRetryable } from '../../src/core/errors.js'
import type { SnapshotEvent, StoreEvent } from '../../src/core/events.js'
import type { StoreStatus } from '../../src/core/store.js'
import { createFaultStore } from '../../src/testing/fault-store.js'
import { advanceTo, failure, r, record, run } from './support.js'

/** A compact view of events: `S:cause@rev[keys]` and `C@rev[op key=value]`. */
function brief(event: StoreEvent<string>): string {
  if (event.type === 'snapshot') {
    const items = event.items.map((item) => `${item.key}=${item.value}`).join(' ')
    return `S:${event.cause}@${event.revision.toString()}[${items}]`
  }
  const changes = event.changes
    .map((change) =>
      change.op === 'put' ? `put ${change.key}=${change.value}` : `del ${change.key}`,
    )
    .join(' ')
  return `C@${event.revision.toString()}[${changes}]`
}

describe('createFaultStore', () => {
  it('wraps a memory store and passes operations through', () => {
    const store = createFaultStore<string>({ initial: { 'a/1': 'x' } })
    expect(store.name).toBe('fault(memory)')
    expect(store.capabilities).toEqual({ ...store.inner.capabilities, resumable: false })
    run(store.put('a/2', 'y'))
    expect(run(store.get('a/2'))?.value).toBe('y')
    expect(run(store.list('a/')).map((item) => item.key)).toEqual(['a/1', 'a/2'])
    expect(run(store.listKeys(''))).toEqual(['a/1', 'a/2'])
    expect(run(store.txn([{ op: 'put', key: 'b', value: 'z' }]))).toEqual({
      succeeded: true,
      revision: r(3),
    })
    expect(run(store.delete('a/', { prefix: true }))).toEqual({ deleted: 2 })
    expect(store.inner.revision()).toBe(r(4))
  })

  it('wraps a given store', () => {
    const inner = createMemoryStore<string>({ initial: { k: 'v' } })
    const store = createFaultStore({ store: inner })
    expect(store.inner).toBe(inner)
    expect(run(store.get('k'))?.value).toBe('v')
    expect(() => createFaultStore({ store: inner, initial: { x: 'y' } })).toThrow(TypeError)
  })

  it('passes watch events through and counts watch subscriptions', () => {
    const store = createFaultStore<string>({ initial: { 'a/1': 'x' } })
    expect(store.watchSubscriptions).toBe(0)
    const one = record(store.watch(['a/']))
    const two = record(store.watch(['b/']))
    expect(store.watchSubscriptions).toBe(2)
    expect(store.totalWatchSubscriptions).toBe(2)
    run(store.put('a/2', 'y'))
    expect(one.values.map(brief)).toEqual(['S:startup@1[a/1=x]', 'C@2[put a/2=y]'])
    expect(two.values.map(brief)).toEqual(['S:startup@1[]'])
    const [, changes] = one.values
    expect(changes?.type === 'changes' && changes.changes[0]).toEqual({
      op: 'put',
      key: 'a/2',
      value: 'y',
      revision: r(2),
    })
    one.subscription.unsubscribe()
    expect(store.watchSubscriptions).toBe(1)
    expect(store.totalWatchSubscriptions).toBe(2)
  })

  it('is cold: nothing happens, and no fault is consumed, before subscribe', () => {
    const store = createFaultStore<string>()
    store.failWrites(1)
    const put = store.put('a', 'x')
    const watch = store.watch([''])
    expect(store.watchSubscriptions).toBe(0)
    expect(store.inner.revision()).toBe(r(0))
    expect(failure(put)).toBeInstanceOf(UnavailableError)
    run(put)
    expect(store.inner.revision()).toBe(r(1))
    record(watch)
    expect(store.watchSubscriptions).toBe(1)
  })
})

describe('breakWatch', () => {
  it('makes every active watch emit a fresh snapshot at the current revision', () => {
    const store = createFaultStore<string>({ initial: { a: '1' } })
    const events = record(store.watch(['']))
    const other = record(store.watch(['b']))
    run(store.put('b', '2'))
    store.breakWatch()
    expect(events.values.map(brief)).toEqual([
      'S:startup@1[a=1]',
      'C@2[put b=2]',
      'S:watch-error@2[a=1 b=2]',
    ])
    expect(other.values.map(brief)).toEqual([
      'S:startup@1[]',
      'C@2[put b=2]',
      'S:watch-error@2[b=2]',
    ])
    store.breakWatch('compacted')
    expect(events.values.map(brief).at(-1)).toBe('S:compacted@2[a=1 b=2]')
  })

  it('keeps delivering changes exactly once afterwards', () => {
    const store = createFaultStore<string>()
    const events = record(store.watch(['']))
    store.breakWatch()
    store.breakWatch()
    run(store.put('a', 'x'))
    expect(events.values.map(brief)).toEqual([
      'S:startup@0[]',
      'S:watch-error@0[]',
      'S:watch-error@0[]',
      'C@1[put a=x]',
    ])
    expect(store.watchSubscriptions).toBe(1)
  })

  it('can be called from inside a watch handler', () => {
    const store = createFaultStore<string>()
    const log: string[] = []
    let broken = false
    store.watch(['']).subscribe((event) => {
      log.push(brief(event))
      if (event.type === 'changes' && !broken) {
        broken = true
        store.breakWatch()
      }
    })
    run(store.put('a', 'x'))
    run(store.put('b', 'y'))
    expect(log).toEqual(['S:startup@0[]', 'C@1[put a=x]', 'S:watch-error@1[a=x]', 'C@2[put b=y]'])
  })
  it('delivers once when a handler breaks the watch during its first snapshot, then writes', () => {
    const store = createFaultStore<string>()
    const log: string[] = []
    store.watch(['']).subscribe((event) => {
      log.push(brief(event))
      if (event.type === 'snapshot' && event.cause === 'startup') {
        store.breakWatch()
        run(store.put('a', 'x'))
      }
    })
    expect(log).toEqual(['S:startup@0[]', 'S:watch-error@0[]', 'C@1[put a=x]'])
    run(store.put('b', 'y'))
    expect(log.at(-1)).toBe('C@2[put b=y]')
    expect(log).toHaveLength(4)
  })
})

describe('disconnect and reconnect', () => {
  it('loses events while disconnected and heals by a snapshot on reconnect', () => {
    const store = createFaultStore<string>({ initial: { a: '1' } })
    const events = record(store.watch(['']))
    store.disconnect()
    run(store.inner.put('b', '2'))
    run(store.inner.delete('a'))
    expect(events.values.map(brief)).toEqual(['S:startup@1[a=1]'])
    store.reconnect()
    run(store.put('c', '3'))
    expect(events.values.map(brief)).toEqual([
      'S:startup@1[a=1]',
      'S:reconnect@3[b=2]',
      'C@4[put c=3]',
    ])
    expect(events.completed()).toBe(false)
  })

  it('reports degraded with a retryable UnavailableError, then ready', () => {
    const store = createFaultStore<string>()
    const statuses = record(store.status$)
    store.disconnect()
    store.disconnect()
    store.reconnect()
    store.reconnect()
    expect(statuses.values.map((status) => status.state)).toEqual(['ready', 'degraded', 'ready'])
    const degraded = statuses.values[1]
    expect(degraded?.error).toBeInstanceOf(UnavailableError)
    expect(isRetryable(degraded?.error)).toBe(true)
  })

  it('fails writes and reads with the outage error while disconnected', () => {
    const store = createFaultStore<string>({ initial: { a: '1' } })
    store.disconnect()
    for (const operation of [
      store.put('b', '2'),
      store.delete('a'),
      store.txn([{ op: 'put', key: 'c', value: '3' }]),
      store.get('a'),
      store.list(''),
      store.listKeys(''),
    ]) {
      const error = failure(operation)
      expect(error).toBeInstanceOf(UnavailableError)
      expect(isRetryable(error)).toBe(true)
    }
    expect(store.inner.revision()).toBe(r(1))
    store.reconnect()
    run(store.put('b', '2'))
    expect(store.inner.revision()).toBe(r(2))
  })

  it('takes a custom outage error and a custom relist cause', () => {
    const store = createFaultStore<string>()
    const events = record(store.watch(['']))
    const statuses = record(store.status$)
    const outage = new DatasyncError('timeout', 'the server stopped answering')
    store.disconnect(outage)
    expect(statuses.values.at(-1)).toEqual<StoreStatus>({ state: 'degraded', error: outage })
    expect(failure(store.put('a', 'x'))).toBe(outage)
    store.reconnect('index-reset')
    expect(events.values.map(brief)).toEqual(['S:startup@0[]', 'S:index-reset@0[]'])
  })

  it('gives a watch started while disconnected its startup snapshot on reconnect', () => {
    const store = createFaultStore<string>({ initial: { a: '1' } })
    store.disconnect()
    const events = record(store.watch(['']))
    expect(store.watchSubscriptions).toBe(1)
    expect(events.values).toEqual([])
    store.breakWatch()
    expect(events.values).toEqual([])
    store.reconnect()
    expect(events.values.map(brief)).toEqual(['S:startup@1[a=1]'])
  })

  it('drops events that were delayed when the connection died', () => {
    const scheduler = new VirtualTimeScheduler()
    const store = createFaultStore<string>({ scheduler })
    const events = record(store.watch(['']))
    store.delayEvents(10)
    run(store.put('a', 'x'))
    store.disconnect()
    advanceTo(scheduler, 100)
    expect(events.values.map(brief)).toEqual(['S:startup@0[]'])
    store.delayEvents(0)
    store.reconnect()
    expect(events.values.map(brief)).toEqual(['S:startup@0[]', 'S:reconnect@1[a=x]'])
  })
})

describe('delayEvents', () => {
  it('delivers each event after the delay, in order', () => {
    const scheduler = new VirtualTimeScheduler()
    const store = createFaultStore<string>({ scheduler })
    store.delayEvents('50ms')
    const events = record(store.watch(['']))
    expect(events.values).toEqual([])
    advanceTo(scheduler, 10)
    run(store.put('a', '1'))
    run(store.put('b', '2'))
    advanceTo(scheduler, 49)
    expect(events.values).toEqual([])
    advanceTo(scheduler, 50)
    expect(events.values.map(brief)).toEqual(['S:startup@0[]'])
    advanceTo(scheduler, 60)
    expect(events.values.map(brief)).toEqual(['S:startup@0[]', 'C@1[put a=1]', 'C@2[put b=2]'])
  })

  it('keeps order when the delay shrinks, and is synchronous again at 0', () => {
    const scheduler = new VirtualTimeScheduler()
    const store = createFaultStore<string>({ scheduler })
    const events = record(store.watch(['']))
    store.delayEvents(100)
    run(store.put('a', '1'))
    store.delayEvents(0)
    run(store.put('b', '2'))
    // 'b' is due now but waits for 'a'.
    expect(events.values.map(brief)).toEqual(['S:startup@0[]'])
    advanceTo(scheduler, 100)
    expect(events.values.map(brief)).toEqual(['S:startup@0[]', 'C@1[put a=1]', 'C@2[put b=2]'])
    run(store.put('c', '3'))
    expect(events.values.map(brief).at(-1)).toBe('C@3[put c=3]')
  })

  it('delays in virtual time in a marble test', () => {
    const testScheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected)
    })
    testScheduler.run(({ expectObservable }) => {
      const store = createFaultStore<string>({ scheduler: testScheduler })
      store.delayEvents(3)
      testScheduler.schedule(() => {
        run(store.put('a', 'x'))
      }, 1)
      expectObservable(store.watch(['']), '^ 10ms !').toBe('---sp', {
        s: { type: 'snapshot', revision: r(0), items: [], cause: 'startup' },
        p: {
          type: 'changes',
          revision: r(1),
          changes: [{ op: 'put', key: 'a', value: 'x', revision: r(1) }],
        },
      })
    })
  })

  it('refuses a bad delay', () => {
    const store = createFaultStore()
    expect(() => {
      store.delayEvents(-1)
    }).toThrow(TypeError)
  })
})

describe('failWrites', () => {
  it('fails the next writes with a retryable error without reaching the inner store', () => {
    const store = createFaultStore<string>()
    store.failWrites(2)
    const first = failure(store.put('a', '1'))
    expect(first).toBeInstanceOf(UnavailableError)
    expect(isRetryable(first)).toBe(true)
    expect(failure(store.txn([{ op: 'delete', key: 'a' }]))).toBeInstanceOf(UnavailableError)
    expect(store.inner.revision()).toBe(r(0))
    // Reads are not writes.
    expect(run(store.get('a'))).toBeUndefined()
    run(store.put('a', '1'))
    expect(store.inner.revision()).toBe(r(1))
  })

  it('fails with the given error, forever with Infinity until failWrites(0)', () => {
    const store = createFaultStore<string>()
    const refused = new Error('refused by the test')
    store.failWrites(Infinity, refused)
    for (let i = 0; i < 5; i++) expect(failure(store.delete('a'))).toBe(refused)
    store.failWrites(0)
    expect(run(store.delete('a'))).toEqual({ deleted: 0 })
  })

  it('refuses a bad count', () => {
    const store = createFaultStore()
    expect(() => {
      store.failWrites(-1)
    }).toThrow(TypeError)
    expect(() => {
      store.failWrites(1.5)
    }).toThrow(TypeError)
  })
})

describe('dropNextEvents', () => {
  it('drops the next change events silently, until a snapshot heals the gap', () => {
    const store = createFaultStore<string>()
    const events = record(store.watch(['']))
    store.dropNextEvents(2)
    run(store.put('a', '1'))
    run(store.put('b', '2'))
    run(store.put('c', '3'))
    expect(events.values.map(brief)).toEqual(['S:startup@0[]', 'C@3[put c=3]'])
    store.breakWatch()
    const snapshot = events.values.at(-1) as SnapshotEvent<string>
    expect(snapshot.items.map((item) => item.key)).toEqual(['a', 'b', 'c'])
  })

  it('never drops a snapshot', () => {
    const store = createFaultStore<string>()
    store.dropNextEvents(1)
    const events = record(store.watch(['']))
    store.breakWatch()
    run(store.put('a', '1'))
    run(store.put('b', '2'))
    expect(events.values.map(brief)).toEqual(['S:startup@0[]', 'S:watch-error@0[]', 'C@2[put b=2]'])
  })

  it('counts across watches in delivery order', () => {
    const store = createFaultStore<string>()
    const one = record(store.watch(['']))
    const two = record(store.watch(['']))
    store.dropNextEvents(1)
    run(store.put('a', '1'))
    expect(one.values).toHaveLength(1)
    expect(two.values.map(brief)).toEqual(['S:startup@0[]', 'C@1[put a=1]'])
  })
})

describe('close', () => {
  it('completes watches, reports closed, fails later operations and closes its own inner store', async () => {
    const store = createFaultStore<string>()
    const events = record(store.watch(['']))
    const statuses = record(store.status$)
    await store.close()
    await store.close()
    expect(events.completed()).toBe(true)
    expect(store.watchSubscriptions).toBe(0)
    expect(statuses.values.map((status) => status.state)).toEqual(['ready', 'closed'])
    expect(statuses.completed()).toBe(true)
    expect(record(store.status$).values).toEqual([{ state: 'closed' }])
    for (const operation of [store.put('a', 'x'), store.get('a'), store.watch([''])]) {
      expect(failure(operation)).toBeInstanceOf(ClosedError)
    }
    expect(failure(store.inner.get('a'))).toBeInstanceOf(ClosedError)
  })

  it('leaves a given inner store open', async () => {
    const inner = createMemoryStore<string>()
    const store = createFaultStore({ store: inner })
    await store.close()
    run(inner.put('a', 'x'))
    expect(inner.revision()).toBe(r(1))
  })

  it('completes its watches when the inner store closes', async () => {
    const store = createFaultStore<string>()
    const events = record(store.watch(['']))
    await store.inner.close()
    expect(events.completed()).toBe(true)
    expect(store.watchSubscriptions).toBe(0)
  })
})

describe('a consumer that heals gaps', () => {
  it('ends with the inner state after lost events, an outage and a broken watch', () => {
    const scheduler = new VirtualTimeScheduler()
    const store = createFaultStore<string>({ scheduler, initial: { a: '1' } })
    const view = new Map<string, string>()
    store.watch(['']).subscribe((event: StoreEvent<string>) => {
      if (event.type === 'snapshot') {
        view.clear()
        for (const item of event.items) view.set(item.key, item.value)
      } else {
        for (const change of event.changes) {
          if (change.op === 'put') view.set(change.key, change.value)
          else view.delete(change.key)
        }
      }
    })
    store.dropNextEvents(1)
    run(store.put('b', '2'))
    store.disconnect()
    run(store.inner.delete('a'))
    store.reconnect()
    store.delayEvents(5)
    run(store.put('c', '3'))
    store.dropNextEvents(1)
    run(store.inner.put('d', '4'))
    advanceTo(scheduler, 5)
    expect(Object.fromEntries(view)).toEqual({ b: '2', c: '3' })
    store.breakWatch()
    advanceTo(scheduler, 10)
    expect(Object.fromEntries(view)).toEqual(
      Object.fromEntries([...store.inner.dump()].map(([key, kv]) => [key, kv.value])),
    )
  })
})
