import { VirtualTimeScheduler, take, type Observable, type Subscription } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { describe, expect, it } from 'vitest'
import { createMemoryStore, type MemoryStore } from '../../src/backends/memory/index.js'
import { ClosedError, DatasyncError } from '../../src/core/errors.js'
import type { StoreEvent } from '../../src/core/events.js'
import { ZERO_REVISION } from '../../src/core/revision.js'
import type { StoreStatus } from '../../src/core/store.js'
import { advanceTo, failure, r, record, run, type Recorder } from './support.js'

function keysOf(store: MemoryStore<string>): Record<string, string> {
  return Object.fromEntries([...store.dump()].map(([key, kv]) => [key, kv.value]))
}

describe('createMemoryStore', () => {
  it('is named memory and has every capability', () => {
    const store = createMemoryStore()
    expect(store.name).toBe('memory')
    expect(store.capabilities).toEqual({
      write: true,
      txn: true,
      ttl: true,
      nativePrev: true,
      resumable: true,
      atomicPrefixDelete: true,
    })
  })

  it('starts empty at revision 0', () => {
    const store = createMemoryStore()
    expect(store.revision()).toBe(ZERO_REVISION)
    expect(store.dump().size).toBe(0)
    expect(run(store.list(''))).toEqual([])
  })

  it('seeds initial data from a record as one write at revision 1', () => {
    const store = createMemoryStore<string>({ initial: { 'b/1': 'y', 'a/1': 'x' } })
    expect(store.revision()).toBe(r(1))
    expect(run(store.list(''))).toEqual([
      { key: 'a/1', value: 'x', revision: r(1) },
      { key: 'b/1', value: 'y', revision: r(1) },
    ])
  })

  it('seeds initial data from an iterable, a repeated key keeping its later value', () => {
    const store = createMemoryStore<number>({
      initial: new Map([
        ['a', 1],
        ['b', 2],
      ]),
    })
    expect(store.revision()).toBe(r(1))
    expect(run(store.get('b'))).toEqual({ key: 'b', value: 2, revision: r(1) })
    const repeated = createMemoryStore<number>({
      initial: [
        ['a', 1],
        ['a', 3],
      ],
    })
    expect(run(repeated.get('a'))?.value).toBe(3)
  })

  it('stays at revision 0 with empty initial data', () => {
    expect(createMemoryStore({ initial: {} }).revision()).toBe(ZERO_REVISION)
  })

  it('refuses an empty key in the initial data', () => {
    expect(() => createMemoryStore<string>({ initial: { '': 'x' } })).toThrow(TypeError)
  })
})

describe('get, put, list, listKeys', () => {
  it('puts and gets a value with its mod revision', () => {
    const store = createMemoryStore<string>()
    run(store.put('a', 'x'))
    expect(store.revision()).toBe(r(1))
    expect(run(store.get('a'))).toEqual({ key: 'a', value: 'x', revision: r(1) })
    run(store.put('b', 'y'))
    run(store.put('a', 'z'))
    expect(run(store.get('a'))).toEqual({ key: 'a', value: 'z', revision: r(3) })
    expect(run(store.get('b'))).toEqual({ key: 'b', value: 'y', revision: r(2) })
  })

  it('returns undefined for a missing key', () => {
    const store = createMemoryStore<string>()
    expect(run(store.get('nope'))).toBeUndefined()
  })

  it('stores values by reference', () => {
    const store = createMemoryStore()
    const bytes = new Uint8Array([1, 2, 3])
    run(store.put('k', bytes))
    expect(run(store.get('k'))?.value).toBe(bytes)
  })

  it('lists the keys under a prefix sorted by key, at one revision', () => {
    const store = createMemoryStore<string>()
    for (const key of ['b/2', 'a/2', 'b/1', 'a/1', 'c']) run(store.put(key, key.toUpperCase()))
    expect(run(store.list('b/'))).toEqual([
      { key: 'b/1', value: 'B/1', revision: r(3) },
      { key: 'b/2', value: 'B/2', revision: r(1) },
    ])
    expect(run(store.listKeys(''))).toEqual(['a/1', 'a/2', 'b/1', 'b/2', 'c'])
    expect(run(store.listKeys('a/'))).toEqual(['a/1', 'a/2'])
    expect(run(store.listKeys('x/'))).toEqual([])
  })

  it('emits once and completes for each operation', () => {
    const store = createMemoryStore<string>()
    const put = record(store.put('a', 'x'))
    expect(put.values).toEqual([undefined])
    expect(put.completed()).toBe(true)
    const got = record(store.get('a'))
    expect(got.values).toHaveLength(1)
    expect(got.completed()).toBe(true)
  })

  it('refuses a bad key, value or ttl with a TypeError through the Observable', () => {
    const store = createMemoryStore<string>()
    let put: Observable<void> | undefined
    expect(() => {
      put = store.put('', 'x')
    }).not.toThrow()
    const error = failure(put!)
    expect(error).toBeInstanceOf(TypeError)
    expect((error as Error).message).toMatch(/expected the key to be a non-empty string, got ""/)
    expect(failure(store.get(42 as unknown as string))).toBeInstanceOf(TypeError)
    expect(failure(store.put('a', undefined as unknown as string))).toBeInstanceOf(TypeError)
    expect((failure(store.put('a', 'x', { ttl: 0 })) as Error).message).toMatch(
      /expected a positive duration, got 0/,
    )
    expect(failure(store.put('a', 'x', { ttl: -5 }))).toBeInstanceOf(TypeError)
    expect(failure(store.put('a', 'x', { ttl: 'soon' as '1s' }))).toBeInstanceOf(TypeError)
    expect(failure(store.list(null as unknown as string))).toBeInstanceOf(TypeError)
    expect(failure(store.watch('a/' as unknown as string[]))).toBeInstanceOf(TypeError)
    expect(store.revision()).toBe(ZERO_REVISION)
  })
})

describe('cold and lazy', () => {
  it('does nothing until subscribed, and again on each subscription', () => {
    const store = createMemoryStore<string>({ initial: { a: 'x', b: 'y' } })
    const put = store.put('c', 'z')
    const del = store.delete('a')
    const txn = store.txn([{ op: 'put', key: 'd', value: 'w' }])
    const watch = store.watch([''])
    expect(store.revision()).toBe(r(1))
    expect(keysOf(store)).toEqual({ a: 'x', b: 'y' })

    run(put)
    run(put)
    expect(store.revision()).toBe(r(3))
    expect(run(del)).toEqual({ deleted: 1 })
    expect(run(txn)).toEqual({ succeeded: true, revision: r(5) })
    expect(keysOf(store)).toEqual({ b: 'y', c: 'z', d: 'w' })

    const events = record(watch)
    expect(events.values).toHaveLength(1)
  })
})

describe('delete', () => {
  it('deletes a key as one revision', () => {
    const store = createMemoryStore<string>({ initial: { a: 'x', ab: 'y' } })
    expect(run(store.delete('a'))).toEqual({ deleted: 1 })
    expect(store.revision()).toBe(r(2))
    expect(keysOf(store)).toEqual({ ab: 'y' })
  })

  it('deletes a missing key without a revision or an event', () => {
    const store = createMemoryStore<string>({ initial: { a: 'x' } })
    const events = record(store.watch(['']))
    expect(run(store.delete('zzz'))).toEqual({ deleted: 0 })
    expect(run(store.delete('zzz/', { prefix: true }))).toEqual({ deleted: 0 })
    expect(store.revision()).toBe(r(1))
    expect(events.values).toHaveLength(1)
  })

  it('deletes every key under a prefix as one revision and one event', () => {
    const store = createMemoryStore<string>({
      initial: { 'a/2': 'two', 'a/1': 'one', b: 'bee' },
    })
    const events = record(store.watch(['']))
    expect(run(store.delete('a/', { prefix: true }))).toEqual({ deleted: 2 })
    expect(store.revision()).toBe(r(2))
    expect(keysOf(store)).toEqual({ b: 'bee' })
    expect(events.values.slice(1)).toEqual([
      {
        type: 'changes',
        revision: r(2),
        changes: [
          { op: 'delete', key: 'a/1', prev: 'one', revision: r(2) },
          { op: 'delete', key: 'a/2', prev: 'two', revision: r(2) },
        ],
      },
    ])
  })

  it("deletes everything with the prefix '' but refuses '' as a single key", () => {
    const store = createMemoryStore<string>({ initial: { a: '1', b: '2' } })
    expect(failure(store.delete(''))).toBeInstanceOf(TypeError)
    expect(run(store.delete('', { prefix: true }))).toEqual({ deleted: 2 })
    expect(store.dump().size).toBe(0)
  })
})

describe('watch', () => {
  it('emits a snapshot synchronously on subscribe, sorted, at the current revision', () => {
    const store = createMemoryStore<string>({ initial: { 'a/2': 'y', 'a/1': 'x', 'b/1': 'z' } })
    run(store.put('a/3', 'w'))
    const events = record(store.watch(['a/']))
    expect(events.values).toEqual([
      {
        type: 'snapshot',
        revision: r(2),
        cause: 'startup',
        items: [
          { key: 'a/1', value: 'x', revision: r(1) },
          { key: 'a/2', value: 'y', revision: r(1) },
          { key: 'a/3', value: 'w', revision: r(2) },
        ],
      },
    ])
  })

  it('emits the changes under its prefixes with their previous values', () => {
    const store = createMemoryStore<string>({ initial: { 'a/1': 'x' } })
    const events = record(store.watch(['a/']))
    run(store.put('a/1', 'x2'))
    run(store.put('b/1', 'elsewhere'))
    run(store.put('a/2', 'y'))
    run(store.delete('a/1'))
    expect(events.values.slice(1)).toEqual([
      {
        type: 'changes',
        revision: r(2),
        changes: [{ op: 'put', key: 'a/1', value: 'x2', prev: 'x', revision: r(2) }],
      },
      {
        type: 'changes',
        revision: r(4),
        changes: [{ op: 'put', key: 'a/2', value: 'y', revision: r(4) }],
      },
      {
        type: 'changes',
        revision: r(5),
        changes: [{ op: 'delete', key: 'a/1', prev: 'x2', revision: r(5) }],
      },
    ])
  })

  it('reports a key under two of its prefixes once', () => {
    const store = createMemoryStore<string>({ initial: { 'a/b/1': 'x' } })
    const events = record(store.watch(['a/', 'a/b/']))
    run(store.put('a/b/2', 'y'))
    const [snapshot, changes] = events.values
    expect(snapshot?.type === 'snapshot' && snapshot.items.map((item) => item.key)).toEqual([
      'a/b/1',
    ])
    expect(changes?.type === 'changes' && changes.changes.map((change) => change.key)).toEqual([
      'a/b/2',
    ])
  })

  it('watches nothing with no prefix and everything with the prefix ""', () => {
    const store = createMemoryStore<string>({ initial: { a: '1', 'z/z': '2' } })
    const nothing = record(store.watch([]))
    const everything = record(store.watch(['']))
    run(store.put('m', '3'))
    expect(nothing.values).toEqual([
      { type: 'snapshot', revision: r(1), items: [], cause: 'startup' },
    ])
    expect(everything.values).toHaveLength(2)
    const [snapshot] = everything.values
    expect(snapshot?.type === 'snapshot' && snapshot.items).toHaveLength(2)
  })

  it('reports only the part of a transaction under its prefixes, as one event', () => {
    const store = createMemoryStore<string>({ initial: { 'a/1': 'x', 'b/1': 'y' } })
    const a = record(store.watch(['a/']))
    const b = record(store.watch(['b/']))
    run(
      store.txn([
        { op: 'put', key: 'b/2', value: 'b2' },
        { op: 'delete', key: 'a/1' },
        { op: 'put', key: 'a/0', value: 'a0' },
        { op: 'put', key: 'b/1', value: 'b1' },
      ]),
    )
    expect(a.values[1]).toEqual({
      type: 'changes',
      revision: r(2),
      changes: [
        { op: 'delete', key: 'a/1', prev: 'x', revision: r(2) },
        { op: 'put', key: 'a/0', value: 'a0', revision: r(2) },
      ],
    })
    expect(b.values[1]).toEqual({
      type: 'changes',
      revision: r(2),
      changes: [
        { op: 'put', key: 'b/2', value: 'b2', revision: r(2) },
        { op: 'put', key: 'b/1', value: 'b1', prev: 'y', revision: r(2) },
      ],
    })
  })

  it('stops delivering once unsubscribed', () => {
    const store = createMemoryStore<string>()
    const events = record(store.watch(['']))
    run(store.put('a', '1'))
    events.subscription.unsubscribe()
    run(store.put('a', '2'))
    expect(events.values).toHaveLength(2)
    expect(events.completed()).toBe(false)
  })

  it('delivers a write made from the snapshot handler after the snapshot', () => {
    const store = createMemoryStore<string>({ initial: { a: '1' } })
    const log: string[] = []
    store.watch(['']).subscribe((event) => {
      log.push(`start ${event.type}`)
      if (event.type === 'snapshot') run(store.put('b', '2'))
      log.push(`end ${event.type}`)
    })
    expect(log).toEqual(['start snapshot', 'end snapshot', 'start changes', 'end changes'])
  })

  it('completes with take(1) after the snapshot and releases the watcher', () => {
    const store = createMemoryStore<string>({ initial: { a: '1' } })
    const events = record(store.watch(['']).pipe(take(1)))
    run(store.put('b', '2'))
    expect(events.values).toHaveLength(1)
    expect(events.completed()).toBe(true)
  })
})

describe('re-entrant writes from a watcher', () => {
  it('delivers events to every watcher in revision order', () => {
    const store = createMemoryStore<string>()
    const log: string[] = []
    const tag = (name: string) => (event: StoreEvent<string>) => {
      log.push(`${name}@${event.revision.toString()}`)
    }
    store.watch(['']).subscribe((event) => {
      tag('first')(event)
      // The first watcher reacts to 'a' by writing 'b' from inside its handler.
      if (event.type === 'changes' && event.changes.some((change) => change.key === 'a')) {
        run(store.put('b', 'from-handler'))
        log.push('first wrote b')
      }
    })
    store.watch(['']).subscribe(tag('second'))
    run(store.put('a', 'x'))
    expect(log).toEqual([
      'first@0',
      'second@0',
      'first@1',
      'first wrote b',
      'second@1',
      'first@2',
      'second@2',
    ])
    expect(store.revision()).toBe(r(2))
    expect(keysOf(store)).toEqual({ a: 'x', b: 'from-handler' })
  })

  it('handles a cascade of writes and a watcher that unsubscribes another', () => {
    const store = createMemoryStore<number>()
    const seen: bigint[] = []
    const later: { victim?: Subscription } = {}
    store.watch(['n']).subscribe((event) => {
      if (event.type !== 'changes') return
      const change = event.changes[0]!
      if (change.op === 'put' && change.value < 3) run(store.put('n', change.value + 1))
      later.victim?.unsubscribe()
    })
    later.victim = store.watch(['n']).subscribe((event) => seen.push(event.revision))
    run(store.put('n', 0))
    expect(store.revision()).toBe(r(4))
    expect(run(store.get('n'))?.value).toBe(3)
    // The victim got its snapshot, then was unsubscribed before its first change was delivered.
    expect(seen).toEqual([0n])
  })

  it('gives a watch started inside a handler a snapshot, then only later revisions', () => {
    const store = createMemoryStore<string>()
    let late: Recorder<StoreEvent<string>> | undefined
    let seenInsideHandler = -1
    store.watch(['']).subscribe((event) => {
      if (event.type === 'changes' && late === undefined) {
        run(store.put('b', 'y'))
        late = record(store.watch(['']))
        seenInsideHandler = late.values.length
      }
    })
    run(store.put('a', 'x'))
    // The snapshot is queued behind the event being delivered, not emitted inside it.
    expect(seenInsideHandler).toBe(0)
    expect(late?.values.map((event) => [event.type, event.revision])).toEqual([['snapshot', r(2)]])
    run(store.put('c', 'z'))
    expect(late?.values.map((event) => [event.type, event.revision])).toEqual([
      ['snapshot', r(2)],
      ['changes', r(3)],
    ])
    const [snapshot] = late!.values
    expect(snapshot?.type === 'snapshot' && snapshot.items.map((item) => item.key)).toEqual([
      'a',
      'b',
    ])
  })
})

describe('txn', () => {
  it('applies its operations atomically as one revision', () => {
    const store = createMemoryStore<string>({ initial: { a: '1', 'p/1': 'x', 'p/2': 'y' } })
    const result = run(
      store.txn([
        { op: 'put', key: 'b', value: '2' },
        { op: 'delete', key: 'p/', prefix: true },
        { op: 'delete', key: 'a' },
      ]),
    )
    expect(result).toEqual({ succeeded: true, revision: r(2) })
    expect(store.revision()).toBe(r(2))
    expect(keysOf(store)).toEqual({ b: '2' })
  })

  it('does nothing for an empty transaction or one that changes nothing', () => {
    const store = createMemoryStore<string>({ initial: { a: '1' } })
    const events = record(store.watch(['']))
    expect(run(store.txn([]))).toEqual({ succeeded: true, revision: r(1) })
    expect(run(store.txn([{ op: 'delete', key: 'missing' }]))).toEqual({
      succeeded: true,
      revision: r(1),
    })
    expect(events.values).toHaveLength(1)
  })

  it('checks exists conditions (put-if-absent)', () => {
    const store = createMemoryStore<string>({ initial: { a: '1' } })
    const putIfAbsent = (key: string) =>
      store.txn([{ op: 'put', key, value: 'new' }], { conditions: [{ key, exists: false }] })
    expect(run(putIfAbsent('a'))).toEqual({ succeeded: false, revision: r(1) })
    expect(run(putIfAbsent('b'))).toEqual({ succeeded: true, revision: r(2) })
    expect(
      run(store.txn([{ op: 'delete', key: 'a' }], { conditions: [{ key: 'a', exists: true }] })),
    ).toEqual({ succeeded: true, revision: r(3) })
    expect(keysOf(store)).toEqual({ b: 'new' })
  })

  it('checks value conditions by content (compare-and-swap)', () => {
    const initial: Record<string, Uint8Array> = { k: new Uint8Array([1, 2]) }
    const store = createMemoryStore({ initial })
    const cas = (expected: Uint8Array, value: Uint8Array) =>
      store.txn([{ op: 'put', key: 'k', value }], { conditions: [{ key: 'k', value: expected }] })
    expect(run(cas(new Uint8Array([9]), new Uint8Array([3])))).toEqual({
      succeeded: false,
      revision: r(1),
    })
    expect(run(cas(new Uint8Array([1, 2]), new Uint8Array([3])))).toEqual({
      succeeded: true,
      revision: r(2),
    })
    expect(run(store.get('k'))?.value).toEqual(new Uint8Array([3]))
    // A value condition on a missing key fails.
    expect(
      run(
        store.txn([{ op: 'delete', key: 'k' }], {
          conditions: [{ key: 'x', value: new Uint8Array() }],
        }),
      ).succeeded,
    ).toBe(false)
  })

  it('checks revision conditions against the mod revision (0 for a missing key)', () => {
    const store = createMemoryStore<string>({ initial: { a: '1' } })
    run(store.put('b', '2'))
    const guarded = (key: string, at: number) =>
      store.txn([{ op: 'put', key, value: 'v' }], { conditions: [{ key, revision: r(at) }] })
    expect(run(guarded('a', 2)).succeeded).toBe(false)
    expect(run(guarded('a', 1))).toEqual({ succeeded: true, revision: r(3) })
    expect(run(guarded('c', 1)).succeeded).toBe(false)
    expect(run(guarded('c', 0))).toEqual({ succeeded: true, revision: r(4) })
  })

  it('needs every condition to hold, and emits nothing when one fails', () => {
    const store = createMemoryStore<string>({ initial: { a: '1', b: '2' } })
    const events = record(store.watch(['']))
    const result = run(
      store.txn([{ op: 'put', key: 'c', value: '3' }], {
        conditions: [
          { key: 'a', value: '1' },
          { key: 'b', value: 'not 2' },
        ],
      }),
    )
    expect(result).toEqual({ succeeded: false, revision: r(1) })
    expect(events.values).toHaveLength(1)
    expect(store.dump().has('c')).toBe(false)
  })

  it('refuses a key written twice with an invalid-argument error naming the key', () => {
    const store = createMemoryStore<string>({ initial: { 'p/1': 'x' } })
    const twice = failure(
      store.txn([
        { op: 'put', key: 'a', value: '1' },
        { op: 'put', key: 'a', value: '2' },
      ]),
    )
    expect(twice).toBeInstanceOf(DatasyncError)
    expect((twice as DatasyncError).code).toBe('invalid-argument')
    expect((twice as DatasyncError).retryable).toBe(false)
    expect((twice as Error).message).toMatch(/duplicate key given in txn request: "a"/)

    const putAndDelete = failure(
      store.txn([
        { op: 'put', key: 'b', value: '1' },
        { op: 'delete', key: 'b' },
      ]),
    )
    expect((putAndDelete as DatasyncError).code).toBe('invalid-argument')
    const underPrefix = failure(
      store.txn([
        { op: 'delete', key: 'p/', prefix: true },
        { op: 'put', key: 'p/2', value: 'y' },
      ]),
    )
    expect((underPrefix as Error).message).toMatch(/"p\/2"/)
    expect(store.revision()).toBe(r(1))
  })

  it('allows overlapping deletes', () => {
    const store = createMemoryStore<string>({ initial: { 'p/1': 'x', 'p/2': 'y' } })
    const events = record(store.watch(['']))
    expect(
      run(
        store.txn([
          { op: 'delete', key: 'p/1' },
          { op: 'delete', key: 'p/', prefix: true },
        ]),
      ),
    ).toEqual({ succeeded: true, revision: r(2) })
    const changes = events.values[1]
    expect(changes?.type === 'changes' && changes.changes.map((change) => change.key)).toEqual([
      'p/1',
      'p/2',
    ])
  })

  it('refuses malformed operations and conditions with a TypeError', () => {
    const store = createMemoryStore<string>()
    expect(failure(store.txn([{ op: 'put', key: '', value: 'x' }]))).toBeInstanceOf(TypeError)
    expect(
      failure(store.txn([{ op: 'upsert', key: 'a' } as unknown as { op: 'delete'; key: string }])),
    ).toBeInstanceOf(TypeError)
    expect(failure(store.txn([{ op: 'put', key: 'a', value: 'x', ttl: 0 }]))).toBeInstanceOf(
      TypeError,
    )
    expect(
      failure(
        store.txn([], {
          conditions: [{ key: 'a' } as unknown as { key: string; exists: boolean }],
        }),
      ),
    ).toBeInstanceOf(TypeError)
    expect(
      failure(
        store.txn([], {
          conditions: [{ key: 'a', revision: 1 as unknown as ReturnType<typeof r> }],
        }),
      ),
    ).toBeInstanceOf(TypeError)
    expect(store.revision()).toBe(ZERO_REVISION)
  })
})

describe('TTL', () => {
  it('deletes the key when the ttl expires, as a write carrying the last value', () => {
    const scheduler = new VirtualTimeScheduler()
    const store = createMemoryStore<string>({ scheduler })
    const events = record(store.watch(['']))
    run(store.put('lease', 'v1', { ttl: 100 }))
    run(store.put('other', 'o'))
    advanceTo(scheduler, 99)
    expect(run(store.get('lease'))?.value).toBe('v1')
    advanceTo(scheduler, 100)
    expect(run(store.get('lease'))).toBeUndefined()
    expect(store.revision()).toBe(r(3))
    expect(events.values.at(-1)).toEqual({
      type: 'changes',
      revision: r(3),
      changes: [{ op: 'delete', key: 'lease', prev: 'v1', revision: r(3) }],
    })
  })

  it('takes duration strings', () => {
    const scheduler = new VirtualTimeScheduler()
    const store = createMemoryStore<string>({ scheduler })
    run(store.put('a', 'x', { ttl: '2s' }))
    advanceTo(scheduler, 1_999)
    expect(store.dump().has('a')).toBe(true)
    advanceTo(scheduler, 2_000)
    expect(store.dump().has('a')).toBe(false)
  })

  it('cancels the expiry on a later put without ttl, and replaces it on a put with a ttl', () => {
    const scheduler = new VirtualTimeScheduler()
    const store = createMemoryStore<string>({ scheduler })
    run(store.put('kept', '1', { ttl: 100 }))
    run(store.put('kept', '2'))
    run(store.put('moved', '1', { ttl: 100 }))
    advanceTo(scheduler, 50)
    run(store.put('moved', '2', { ttl: 100 }))
    advanceTo(scheduler, 149)
    expect(keysOf(store)).toEqual({ kept: '2', moved: '2' })
    expect(store.revision()).toBe(r(4))
    advanceTo(scheduler, 150)
    expect(keysOf(store)).toEqual({ kept: '2' })
    expect(store.revision()).toBe(r(5))
    advanceTo(scheduler, 1_000)
    expect(store.revision()).toBe(r(5))
  })

  it('cancels the expiry when the key is deleted', () => {
    const scheduler = new VirtualTimeScheduler()
    const store = createMemoryStore<string>({ scheduler })
    run(store.put('a/1', 'x', { ttl: 100 }))
    run(store.delete('a/', { prefix: true }))
    run(store.put('a/1', 'y'))
    advanceTo(scheduler, 500)
    expect(run(store.get('a/1'))?.value).toBe('y')
    expect(store.revision()).toBe(r(3))
  })

  it('sets expiries from a transaction', () => {
    const scheduler = new VirtualTimeScheduler()
    const store = createMemoryStore<string>({ scheduler })
    run(
      store.txn([
        { op: 'put', key: 'a', value: '1', ttl: 10 },
        { op: 'put', key: 'b', value: '2', ttl: 10 },
      ]),
    )
    advanceTo(scheduler, 10)
    expect(store.dump().size).toBe(0)
    // Each expiry is its own write.
    expect(store.revision()).toBe(r(3))
  })

  it('keeps a ttl longer than the longest JS timer', () => {
    const scheduler = new VirtualTimeScheduler()
    const store = createMemoryStore<string>({ scheduler })
    run(store.put('a', 'x', { ttl: '1000h' }))
    advanceTo(scheduler, 2 ** 31)
    expect(store.dump().has('a')).toBe(true)
    advanceTo(scheduler, 3_600_000_000)
    expect(store.dump().has('a')).toBe(false)
  })

  it('expires in virtual time in a marble test', () => {
    const testScheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected)
    })
    testScheduler.run(({ expectObservable }) => {
      const store = createMemoryStore<string>({ scheduler: testScheduler })
      testScheduler.schedule(() => {
        run(store.put('a', 'x', { ttl: 5 }))
      }, 2)
      expectObservable(store.watch(['']), '^ 20ms !').toBe('s-p----d', {
        s: { type: 'snapshot', revision: r(0), items: [], cause: 'startup' },
        p: {
          type: 'changes',
          revision: r(1),
          changes: [{ op: 'put', key: 'a', value: 'x', revision: r(1) }],
        },
        d: {
          type: 'changes',
          revision: r(2),
          changes: [{ op: 'delete', key: 'a', prev: 'x', revision: r(2) }],
        },
      })
    })
  })
})

describe('close', () => {
  it('completes active watches and reports closed on status$', async () => {
    const store = createMemoryStore<string>()
    const statuses = record(store.status$)
    const events = record(store.watch(['']))
    expect(statuses.values).toEqual([{ state: 'ready' }])
    await store.close()
    expect(events.completed()).toBe(true)
    expect(statuses.values).toEqual([{ state: 'ready' }, { state: 'closed' }])
    expect(statuses.completed()).toBe(true)
    const late = record(store.status$)
    expect(late.values).toEqual<StoreStatus[]>([{ state: 'closed' }])
    expect(late.completed()).toBe(true)
  })

  it('fails every operation with ClosedError afterwards, and is idempotent', async () => {
    const store = createMemoryStore<string>({ initial: { a: '1' } })
    const put = store.put('b', '2')
    await store.close()
    await store.close()
    for (const operation of [
      put,
      store.get('a'),
      store.list(''),
      store.listKeys(''),
      store.delete('a'),
      store.txn([]),
      store.watch(['']),
    ]) {
      const error = failure(operation)
      expect(error).toBeInstanceOf(ClosedError)
      expect((error as ClosedError).code).toBe('closed')
    }
    // The test helpers still work.
    expect(store.revision()).toBe(r(1))
    expect(keysOf(store)).toEqual({ a: '1' })
  })

  it('cancels pending expiries', async () => {
    const scheduler = new VirtualTimeScheduler()
    const store = createMemoryStore<string>({ scheduler })
    run(store.put('a', 'x', { ttl: 10 }))
    await store.close()
    advanceTo(scheduler, 100)
    expect(store.revision()).toBe(r(1))
    expect(store.dump().has('a')).toBe(true)
  })

  it('can be closed from inside a watcher', async () => {
    const store = createMemoryStore<string>()
    const first = record(store.watch(['']))
    let closing: Promise<void> | undefined
    store.watch(['']).subscribe((event) => {
      if (event.type === 'changes') closing = store.close()
    })
    const third = record(store.watch(['']))
    run(store.put('a', 'x'))
    await closing
    expect(first.values).toHaveLength(2)
    expect(first.completed()).toBe(true)
    // Closed before the event reached it.
    expect(third.values).toHaveLength(1)
    expect(third.completed()).toBe(true)
  })
})

describe('dump', () => {
  it('returns a frozen snapshot that later writes do not change', () => {
    const store = createMemoryStore<string>({ initial: { b: '2', a: '1' } })
    const before = store.dump()
    run(store.put('c', '3'))
    expect([...before.keys()]).toEqual(['a', 'b'])
    expect(before.get('a')).toEqual({ key: 'a', value: '1', revision: r(1) })
    expect(() => (before as Map<string, unknown>).set('x', 1)).toThrow()
    expect(store.dump().size).toBe(3)
  })
})
