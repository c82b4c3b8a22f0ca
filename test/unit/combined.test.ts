import { NEVER, Subject, VirtualTimeScheduler, lastValueFrom, type Observable } from 'rxjs'
import { describe, expect, it } from 'vitest'
import {
  CapabilityError,
  ClosedError,
  AuthError,
  DatasyncError,
  ZERO_REVISION,
  createDatasync,
  createMemoryStore,
  createRoutedStore,
  type KvStore,
  type MemoryStore,
  type StoreEvent,
  type StoreStatus,
} from '../../src/index.js'
import { createFaultStore, recordConsumer, scriptedStore } from '../../src/testing/index.js'
import { advanceTo, failure, record, run } from './support.js'

/** A store's events as `S a=1 b=2` and `C a:1>2 b:x>3 c:4>x` lines. */
function lines(events: readonly StoreEvent<string>[]): string[] {
  return events.map((event) =>
    event.type === 'snapshot'
      ? ['S', ...event.items.map((item) => `${item.key}=${item.value}`)].join(' ')
      : [
          'C',
          ...event.changes.map(
            (change) =>
              `${change.key}:${change.prev ?? 'x'}>${change.op === 'put' ? change.value : 'x'}`,
          ),
        ].join(' '),
  )
}

/** A memory store that claims it cannot write (as FileDB), with its writes still reachable. */
function readOnly(store: MemoryStore<string>): KvStore<string> {
  return { ...store, capabilities: { ...store.capabilities, write: false } }
}

/** A store whose watch is driven by hand and records the prefixes it is asked for. */
function handStore(name = 'hand') {
  const events = new Subject<StoreEvent<string>>()
  const asked: (readonly string[])[] = []
  const status = new Subject<StoreStatus>()
  const store: KvStore<string> = {
    ...scriptedStore<string>(
      (prefixes) => {
        asked.push(prefixes)
        return events
      },
      { status$: status },
    ),
    name,
  }
  return { store, events, asked, status }
}

describe('routed store: placing keys', () => {
  it('a key belongs to the source with the longest matching prefix; a watch reads each source under what it owns', () => {
    const a = createMemoryStore<string>({ initial: { 'cfg/x': 'a', 'cfg/db/y': 'shadowed' } })
    const b = createMemoryStore<string>({ initial: { 'cfg/db/y': 'b', 'other/z': 'not routed' } })
    const store = createRoutedStore({ 'cfg/': a, 'cfg/db/': b })
    const watched = record(store.watch(['cfg/']))
    expect(lines(watched.values)).toEqual(['S cfg/db/y=b cfg/x=a'])
    expect(run(store.get('cfg/db/y'))?.value).toBe('b')
    expect(run(store.get('other/z'))).toBeUndefined()
    expect(run(store.listKeys(''))).toEqual(['cfg/db/y', 'cfg/x'])
    // A change to a key another source owns is not a change of the combined view.
    run(a.put('cfg/db/y', 'shadowed again'))
    run(b.put('cfg/db/y', 'b2'))
    run(a.put('cfg/x', 'a2'))
    expect(lines(watched.values.slice(1))).toEqual(['C cfg/db/y:b>b2', 'C cfg/x:a>a2'])
  })

  it('a watch of a prefix broader than a route gives that source the narrower prefix', () => {
    const a = handStore('a')
    const b = handStore('b')
    const store = createRoutedStore({ 'app/': a.store, 'app/live/': b.store })
    // No route takes '': each source reads its own routes; 'app/x/' lies in 'app/' already.
    record(store.watch(['', 'app/x/']))
    expect(a.asked).toEqual([['app/']])
    expect(b.asked).toEqual([['app/live/']])
    record(store.watch(['app/live/x/']))
    expect(a.asked.length).toBe(1)
    expect(b.asked.at(-1)).toEqual(['app/live/x/'])
  })

  it('puts and deletes go to the owner; a read-only source refuses with an error naming the key and the source', () => {
    const files = createMemoryStore<string>({ initial: { 'defaults/mtu': '1500' } })
    const live = createMemoryStore<string>()
    const store = createRoutedStore({
      'defaults/': { name: 'defaults', store: readOnly(files) },
      'config/': live,
    })
    run(store.put('config/mtu', '9000'))
    expect(run(live.get('config/mtu'))?.value).toBe('9000')
    for (const [write, names] of [
      [store.put('defaults/mtu', '1'), "put 'defaults/mtu'"],
      [store.delete('defaults/mtu'), "delete 'defaults/mtu'"],
      [store.delete('', { prefix: true }), "delete under ''"],
      [store.txn([{ op: 'put', key: 'defaults/mtu', value: '1' }]), "txn put 'defaults/mtu'"],
    ] as const) {
      const error = failure(write)
      expect(error).toBeInstanceOf(CapabilityError)
      expect((error as CapabilityError).backend).toBe('routed')
      expect((error as Error).message).toContain(names)
      expect((error as Error).message).toContain("source 'defaults' (memory)")
    }
    expect(run(files.get('defaults/mtu'))?.value).toBe('1500')
    const unrouted = failure(store.put('elsewhere', '1'))
    expect(unrouted).toBeInstanceOf(DatasyncError)
    expect((unrouted as DatasyncError).code).toBe('invalid-argument')
    expect((unrouted as Error).message).toContain("'elsewhere'")
  })

  it('a prefix delete over several sources deletes only the keys each one owns', () => {
    const a = createMemoryStore<string>({ initial: { 'p/1': '1', 'p/q/shadowed': 's' } })
    const b = createMemoryStore<string>({ initial: { 'p/q/2': '2', 'p/q/3': '3' } })
    const store = createRoutedStore({ 'p/': a, 'p/q/': b })
    expect(run(store.delete('p/', { prefix: true }))).toEqual({ deleted: 3 })
    expect(run(a.listKeys(''))).toEqual(['p/q/shadowed'])
    expect(run(b.listKeys(''))).toEqual([])
  })
})

describe('routed store: transactions', () => {
  it('a transaction within one source is atomic there; one across sources is refused naming the keys and sources', () => {
    const a = createMemoryStore<string>()
    const b = createMemoryStore<string>()
    const store = createRoutedStore({ 'a/': { name: 'left', store: a }, 'b/': b })
    const ok = run(
      store.txn([
        { op: 'put', key: 'a/1', value: '1' },
        { op: 'put', key: 'a/2', value: '2' },
      ]),
    )
    expect(ok.succeeded).toBe(true)
    expect(a.revision()).toBe(1n) // one revision in the source: one transaction
    const error = failure(
      store.txn([
        { op: 'put', key: 'a/3', value: '3' },
        { op: 'put', key: 'b/1', value: '1' },
      ]),
    )
    expect(error).toBeInstanceOf(CapabilityError)
    expect((error as Error).message).toContain("'a/3' in source 'left' (memory)")
    expect((error as Error).message).toContain("'b/1' in source 'memory' (memory)")
    expect(run(store.listKeys(''))).toEqual(['a/1', 'a/2'])
    const byCondition = failure(
      store.txn([{ op: 'put', key: 'a/3', value: '3' }], {
        conditions: [{ key: 'b/1', exists: false }],
      }),
    )
    expect(byCondition).toBeInstanceOf(CapabilityError)
  })

  it('a revision condition holds for the combined revision of the version it names, and no other', () => {
    const a = createMemoryStore<string>()
    const b = createMemoryStore<string>({ initial: { 'b/pad': 'p' } })
    const store = createRoutedStore({ 'a/': a, 'b/': b })
    run(store.put('a/k', 'v1'))
    const first = run(store.get('a/k'))
    if (first === undefined) throw new Error('a/k is missing')
    // The same version read again keeps its revision; the source's own revision is another count.
    expect(run(store.get('a/k'))?.revision).toBe(first.revision)
    const cas = (at: bigint) =>
      run(
        store.txn([{ op: 'put', key: 'a/k', value: 'next' }], {
          conditions: [{ key: 'a/k', revision: at as typeof first.revision }],
        }),
      )
    run(a.put('a/k', 'v2')) // behind the combined store's back
    expect(cas(first.revision).succeeded).toBe(false)
    const second = run(store.get('a/k'))
    expect(second!.revision > first.revision).toBe(true)
    expect(cas(second!.revision).succeeded).toBe(true)
    expect(run(store.get('a/k'))?.value).toBe('next')
    // A missing key counts as the zero revision, as in etcd.
    const absent = run(
      store.txn([{ op: 'put', key: 'a/new', value: 'n' }], {
        conditions: [{ key: 'a/new', revision: ZERO_REVISION }],
      }),
    )
    expect(absent.succeeded).toBe(true)
  })
})

describe('combined store: sources failing and healing on their own', () => {
  it('a gap in one source brings only the differences it made, and the other source keeps flowing', () => {
    const faulty = createFaultStore<string>({ initial: { 'a/keep': 'k', 'a/drop': 'd' } })
    const other = createMemoryStore<string>({ initial: { 'b/1': '1' } })
    const store = createRoutedStore({ 'a/': faulty, 'b/': other })
    const states = record(store.status$)
    const watched = record(store.watch(['']))
    faulty.disconnect()
    expect(states.values.at(-1)?.state).toBe('degraded')
    run(faulty.inner.put('a/keep', 'k2'))
    run(faulty.inner.delete('a/drop'))
    run(other.put('b/1', '2')) // flows during the outage
    faulty.reconnect()
    expect(lines(watched.values)).toEqual([
      'S a/drop=d a/keep=k b/1=1',
      'C b/1:1>2',
      'C a/drop:d>x a/keep:k>k2',
    ])
    expect(states.values.at(-1)?.state).toBe('ready')
    const revisions = watched.values.map((event) => event.revision)
    expect(revisions).toEqual([...revisions].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)))
  })

  it('a source that does not answer within startTimeout does not hold the others: its keys come as changes when it answers', () => {
    const scheduler = new VirtualTimeScheduler()
    const late = handStore('etcd')
    const files = createMemoryStore<string>({ initial: { 'defaults/a': '1' } })
    const store = createRoutedStore(
      { 'defaults/': files, 'config/': { name: 'live', store: late.store } },
      { startTimeout: '5s', scheduler },
    )
    const sources = record(store.sources$)
    const status = record(store.status$)
    late.status.next({ state: 'connecting' })
    const watched = record(store.watch(['']))
    expect(watched.values).toEqual([])
    advanceTo(scheduler, 5_000)
    expect(lines(watched.values)).toEqual(['S defaults/a=1'])
    expect(status.values.at(-1)?.state).toBe('degraded')
    expect(status.values.at(-1)?.error?.message).toContain("source 'live' (etcd)")
    expect(sources.values.at(-1)?.['live']?.state).toBe('degraded')
    expect(sources.values.at(-1)?.['memory']?.state).toBe('ready')
    run(files.put('defaults/b', '2'))
    late.status.next({ state: 'ready' })
    late.events.next({
      type: 'snapshot',
      revision: 7n as never,
      items: [{ key: 'config/x', value: 'live', revision: 7n as never }],
      cause: 'startup',
    })
    expect(lines(watched.values.slice(1))).toEqual(['C defaults/b:x>2', 'C config/x:x>live'])
    expect(status.values.at(-1)?.state).toBe('ready')
    expect(sources.values.at(-1)?.['live']?.state).toBe('ready')
  })

  it('a source closed by a fatal error closes the combined store with that error', async () => {
    const a = handStore('a')
    const b = createMemoryStore<string>()
    const store = createRoutedStore({ 'a/': a.store, 'b/': b })
    const status = record(store.status$)
    a.status.next({ state: 'ready' })
    const fatal = new AuthError('a', 'wrong password')
    a.status.next({ state: 'closed', error: fatal })
    expect(status.values.at(-1)).toEqual({ state: 'closed', error: fatal })
    expect(status.completed()).toBe(true)
    const error = await lastValueFrom(store.get('b/1')).catch((caught: unknown) => caught)
    expect(error).toBe(fatal)
    expect(failure(b.get('b/1'))).toBeInstanceOf(ClosedError)
  })

  it('is cold: no source is watched before a watch is subscribed, and unsubscribing releases every source', () => {
    const a = createFaultStore<string>()
    const b = createFaultStore<string>()
    const store = createRoutedStore({ 'a/': a, 'b/': b })
    const watch: Observable<StoreEvent<string>> = store.watch([''])
    expect(a.watchSubscriptions + b.watchSubscriptions).toBe(0)
    const watched = record(watch)
    expect(a.watchSubscriptions + b.watchSubscriptions).toBe(2)
    watched.subscription.unsubscribe()
    expect(a.watchSubscriptions + b.watchSubscriptions).toBe(0)
  })

  it('close() closes every source and ends the watches', async () => {
    const a = createMemoryStore<string>()
    const b = createMemoryStore<string>()
    const store = createRoutedStore({ 'a/': a, 'b/': b })
    const watched = record(store.watch(['']))
    await store.close()
    expect(watched.completed()).toBe(true)
    expect(failure(a.get('a/1'))).toBeInstanceOf(ClosedError)
    expect(failure(b.get('b/1'))).toBeInstanceOf(ClosedError)
    expect(failure(store.get('a/1'))).toBeInstanceOf(ClosedError)
  })

  it('an orchestrator over a routed store: consumers see one ordered resync, then changes from every source', async () => {
    const a = createMemoryStore<string>({ initial: { 'a/1': '1' } })
    const b = createMemoryStore<string>({ initial: { 'b/1': '1' } })
    const store = createRoutedStore({ 'a/': a, 'b/': b })
    const sync = createDatasync(store)
    const all = recordConsumer(sync.register('all', { prefixes: [''] }))
    sync.start()
    await all.until((state) => state.size === 2)
    run(b.put('b/1', '2'))
    run(a.delete('a/1'))
    await all.until((state) => state.get('b/1') === '2' && !state.has('a/1'))
    expect(all.violations).toEqual([])
    expect(all.events.map((event) => event.kind)).toEqual(['resync', 'change', 'change'])
    sync.close()
    await store.close()
  })
})

it('with startTimeout Infinity, the first snapshot waits for every source', () => {
  const scheduler = new VirtualTimeScheduler()
  const store = createRoutedStore(
    { 'a/': scriptedStore<string>(NEVER), 'b/': createMemoryStore<string>() },
    { startTimeout: Infinity, scheduler },
  )
  const watched = record(store.watch(['']))
  advanceTo(scheduler, 24 * 3_600_000)
  expect(watched.values).toEqual([])
  watched.subscription.unsubscribe()
})
