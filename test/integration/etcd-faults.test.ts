/**
 * The etcd store through faults on real members: a member killed with SIGKILL during a stream of
 * writes, etcd stopped and restarted, a connection cut while the history is compacted, a delayed
 * start. Every test ends with every consumer holding exactly the store's state, with correct
 * previous values (the recorder's violations list is empty).
 */
import { filter, firstValueFrom, type Subscription } from 'rxjs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  createEtcdStore,
  type EtcdStore,
  type EtcdStoreOptions,
} from '../../src/backends/etcd/index.js'
import { string } from '../../src/core/codec.js'
import type { StoreEvent } from '../../src/core/events.js'
import type { StoreStatus } from '../../src/core/store.js'
import { createDatasync, type Datasync } from '../../src/sync/datasync.js'
import type { ConsumerEvent } from '../../src/sync/types.js'
import { recordConsumer, type ConsumerRecorder } from '../../src/testing/recorder.js'
import {
  freePort,
  pollUntil,
  startEtcd,
  startEtcdCluster,
  type EtcdCluster,
  type EtcdServer,
} from '../servers/index.js'
import { done, etcdMetric, statusReaches } from '../support/etcd.js'
import { startTcpProxy } from '../support/tcp-proxy.js'
import { retried } from '../support/retry.js'

const text = string()
const enc = (value: string) => text.encode(value)
const dec = (value: Uint8Array) => text.decode(value)

let prefixCounter = 0
const fresh = (name: string) => `fault-${process.pid}-${++prefixCounter}-${name}/`

/** Everything a test opened, closed after it whatever happened. */
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function open(options: Parameters<typeof createEtcdStore>[0]): EtcdStore {
  const store = createEtcdStore(options)
  cleanups.push(() => store.close())
  return store
}

function orchestrate(
  store: EtcdStore,
  options: Parameters<typeof createDatasync>[1] = {},
): Datasync<Uint8Array> {
  const sync = createDatasync(store, { ackTimeout: '10s', ...options })
  cleanups.push(() => {
    sync.close()
  })
  return sync
}

function record(status$: EtcdStore['status$']): StoreStatus['state'][] {
  const states: StoreStatus['state'][] = []
  const subscription: Subscription = status$.subscribe((status) => states.push(status.state))
  cleanups.push(() => {
    subscription.unsubscribe()
  })
  return states
}

const inSync = (sync: Datasync<Uint8Array>) =>
  firstValueFrom(sync.status$.pipe(filter((status) => status.state === 'in-sync')))

const kinds = (events: readonly ConsumerEvent<string>[]) =>
  events.map((event) => `${event.kind}:${event.reason}`)

/** Writes with retries: a write that meets a fault (a killed member) is tried again. */
async function persist<T>(write: () => Promise<T>): Promise<T> {
  return retried(write)
}

/** Every key under `prefix` with its decoded value, from `store`. */
async function listing(store: EtcdStore, prefix: string) {
  const items = (await persist(() => done(store.list(prefix)))) ?? []
  return items.map((item) => ({ ...item, value: dec(item.value) }))
}

describe('a three-member cluster', () => {
  let cluster: EtcdCluster | undefined
  beforeAll(async () => {
    cluster = await startEtcdCluster(3)
  })
  afterAll(async () => {
    await cluster?.cleanup()
  })

  it('kill -9 of the member holding the watch, during a stream of writes: the watch goes on through another member, nothing lost', async () => {
    if (cluster === undefined) throw new Error('the cluster did not start')
    const members = cluster.members
    const store = open({
      endpoints: [...cluster.endpoints],
      reconnectInterval: '500ms',
      statusInterval: '500ms',
    })
    const writer = open({ endpoints: [...cluster.endpoints] })
    const states = record(store.status$)
    const p = fresh('kill')
    for (let i = 0; i < 10; i++) await done(writer.put(`${p}k${i}`, enc(`initial-${i}`)))
    const sync = orchestrate(store)
    const all = recordConsumer(sync.register('all', { prefixes: [p], codec: text }))
    const odd = recordConsumer(
      sync.register('odd', {
        prefixes: [`${p}k1`, `${p}k3`, `${p}k5`, `${p}k7`, `${p}k9`],
        codec: text,
      }),
    )
    sync.start()
    await inSync(sync)

    // The member whose watcher count is 1 holds the store's watch (the writer does not watch).
    const watching = async () => {
      const counts = await Promise.all(
        members.map((member) =>
          member.running
            ? etcdMetric(member.clientUrl, 'etcd_debugging_mvcc_watcher_total')
            : Promise.resolve(0),
        ),
      )
      return members.filter((_, index) => counts[index] === 1)
    }
    const [victim] = await pollUntil(
      async () => {
        const found = await watching()
        return found.length === 1 ? found : undefined
      },
      { description: 'the member holding the watch' },
    )

    let writes = 0
    let stopWriting = false
    const stream = (async () => {
      for (let i = 0; !stopWriting; i++) {
        const key = `${p}k${i % 10}`
        await persist(() =>
          i % 7 === 3
            ? done(writer.delete(key)).then(() => undefined)
            : done(writer.put(key, enc(`w${i}`))),
        )
        writes++
      }
    })()
    await pollUntil(() => writes >= 60, { description: 'the first writes' })
    await victim!.kill()
    await pollUntil(() => writes >= 500, {
      timeoutMs: 60_000,
      description: 'writes after the kill',
    })
    stopWriting = true
    await stream

    const expected = await listing(writer, p)
    await all.untilEquals(expected, '60s')
    await odd.untilEquals(
      expected.filter((item) => /k[13579]$/.test(item.key)),
      '60s',
    )
    expect(all.violations).toEqual([])
    expect(odd.violations).toEqual([])
    // The watch resumed: no second resync, no gap; every change came live with its prev.
    expect(kinds(all.events).filter((kind) => kind !== 'change:live')).toEqual(['resync:startup'])
    expect(kinds(odd.events).filter((kind) => kind !== 'change:live')).toEqual(['resync:startup'])
    // The watch lives on another member now.
    const now = await pollUntil(
      async () => {
        const found = await watching()
        return found.length === 1 ? found : undefined
      },
      { description: 'the watch on a live member' },
    )
    expect(now[0]).not.toBe(victim)
    expect(states).toContain('degraded')
    expect(states.at(-1)).toBe('ready')
  })
})

describe('one member', () => {
  let etcd: EtcdServer | undefined
  beforeAll(async () => {
    etcd = await startEtcd()
  })
  afterAll(async () => {
    await etcd?.cleanup()
  })
  const server = () => {
    if (etcd === undefined) throw new Error('etcd did not start')
    return etcd
  }
  /** A store reaching etcd through a proxy the test can cut, and a writer straight to etcd. */
  const throughProxy = async (options: Omit<EtcdStoreOptions, 'endpoints'>) => {
    const proxy = await startTcpProxy(server().clientPort)
    cleanups.push(() => proxy.close())
    const store = open({ endpoints: [proxy.url], ...options })
    const writer = open({ endpoints: server().endpoints })
    return { proxy, store, writer }
  }

  it('stop etcd, restart it: the watch resumes with no resync, nothing lost, status degraded then ready', async () => {
    // Through a proxy, kept cut for a while after the restart: the writes below certainly happen
    // while the store is away, after the member restarted.
    const { proxy, store, writer } = await throughProxy({
      reconnectInterval: '300ms',
      statusInterval: '300ms',
    })
    const states = record(store.status$)
    const p = fresh('restart')
    for (let i = 0; i < 5; i++) await done(writer.put(`${p}${i}`, enc(`before-${i}`)))
    const sync = orchestrate(store)
    const recorder = recordConsumer(sync.register('c', { prefixes: [p], codec: text }))
    const raw: StoreEvent<Uint8Array>[] = []
    const watching = store.watch([p]).subscribe((event) => raw.push(event))
    cleanups.push(() => {
      watching.unsubscribe()
    })
    sync.start()
    await inSync(sync)
    await done(writer.put(`${p}0`, enc('live')))
    await recorder.until((state) => state.get(`${p}0`) === 'live', '20s')

    await server().stop()
    await statusReaches(store.status$, 'degraded')
    await proxy.interrupt()
    await server().start()
    await persist(() => done(writer.put(`${p}1`, enc('while-away'))))
    await persist(() => done(writer.delete(`${p}2`)))
    await persist(() => done(writer.put(`${p}new`, enc('new'))))
    expect((await firstValueFrom(store.status$)).state).toBe('degraded')
    await proxy.restore()
    await statusReaches(store.status$, 'ready')
    await done(writer.put(`${p}3`, enc('after')))

    const expected = await listing(writer, p)
    await recorder.untilEquals(expected, '30s')
    expect(recorder.violations).toEqual([])
    expect(kinds(recorder.events).filter((kind) => kind !== 'change:live')).toEqual([
      'resync:startup',
    ])
    const changes = recorder.events.flatMap((event) =>
      event.kind === 'change' ? event.changes : [],
    )
    expect(changes.find((change) => change.key === `${p}2`)).toMatchObject({
      op: 'delete',
      prev: 'before-2',
    })
    expect(changes.find((change) => change.key === `${p}1`)).toMatchObject({
      op: 'put',
      value: 'while-away',
      prev: 'before-1',
    })
    // The store itself emitted one snapshot only: it resumed, it did not relist.
    expect(raw.filter((event) => event.type === 'snapshot')).toHaveLength(1)
    expect(states).toContain('degraded')
    expect(states.at(-1)).toBe('ready')
  })

  it('a cut connection, then writes and a compaction past the client revision: the store relists and consumers get the diff, deletes with their last value', async () => {
    const { proxy, store, writer } = await throughProxy({
      reconnectInterval: '300ms',
      statusInterval: '300ms',
    })
    const p = fresh('compacted')
    await done(writer.put(`${p}keep`, enc('k')))
    await done(writer.put(`${p}change`, enc('c1')))
    await done(writer.put(`${p}drop`, enc('d')))
    const sync = orchestrate(store)
    const recorder = recordConsumer(sync.register('c', { prefixes: [p], codec: text }))
    const causes: string[] = []
    const watching = store.watch([p]).subscribe((event) => {
      if (event.type === 'snapshot') causes.push(event.cause)
    })
    cleanups.push(() => {
      watching.unsubscribe()
    })
    sync.start()
    await inSync(sync)
    await pollUntil(() => causes.length === 1, { description: 'the first snapshot' })

    await proxy.interrupt()
    await statusReaches(store.status$, 'degraded')
    await done(writer.put(`${p}change`, enc('c2')))
    await done(writer.delete(`${p}drop`))
    await done(writer.put(`${p}new`, enc('n')))
    await done(writer.put(`${p}change`, enc('c3')))
    const compacted = await done(writer.compact())
    expect(compacted?.revision).toBeGreaterThan(0n)
    await proxy.restore()

    const expected = await listing(writer, p)
    await recorder.untilEquals(expected, '30s')
    expect(recorder.violations).toEqual([])
    expect(kinds(recorder.events)).toEqual(['resync:startup', 'change:gap'])
    const diff = recorder.events[1]!
    const described =
      diff.kind === 'change'
        ? diff.changes.map((c) => `${c.op} ${c.key.slice(p.length)} ${c.prev ?? '-'}`).sort()
        : []
    expect(described).toEqual(['delete drop d', 'put change c1', 'put new -'])
    await pollUntil(() => causes.length === 2, { description: 'the relist' })
    expect(causes).toEqual(['startup', 'compacted'])
    await statusReaches(store.status$, 'ready')
  })

  it('a cut connection with the history kept: the watch resumes and delivers every change with its prev, no snapshot', async () => {
    const { proxy, store, writer } = await throughProxy({ reconnectInterval: '300ms' })
    const p = fresh('resume')
    await done(writer.put(`${p}a`, enc('1')))
    await done(writer.put(`${p}b`, enc('1')))
    const sync = orchestrate(store)
    const recorder = recordConsumer(sync.register('c', { prefixes: [p], codec: text }))
    sync.start()
    await inSync(sync)
    await proxy.interrupt()
    await statusReaches(store.status$, 'degraded')
    for (let i = 2; i <= 5; i++) await done(writer.put(`${p}a`, enc(String(i))))
    await done(writer.delete(`${p}b`))
    await proxy.restore()
    await recorder.untilEquals(await listing(writer, p), '30s')
    expect(recorder.violations).toEqual([])
    expect(kinds(recorder.events).filter((kind) => kind !== 'change:live')).toEqual([
      'resync:startup',
    ])
    const changes = recorder.events.flatMap((event) =>
      event.kind === 'change' ? event.changes : [],
    )
    // Every intermediate value, in order: a resumed watch replays the history.
    expect(
      changes.map((change) => `${change.op} ${change.key.slice(p.length)} ${change.prev ?? '-'}`),
    ).toEqual(['put a 1', 'put a 2', 'put a 3', 'put a 4', 'delete b 1'])
  })

  it('a resume across more than 4 MiB of history (etcd sends it in fragments) delivers every change once', async () => {
    const { proxy, store, writer } = await throughProxy({ reconnectInterval: '300ms' })
    const p = fresh('fragments')
    const big = (tag: string) => tag.padEnd(20 * 1024, '.')
    for (let i = 0; i < 100; i++) await done(writer.put(`${p}${i}`, enc(big(`a${i}`))))
    const sync = orchestrate(store)
    const recorder = recordConsumer(sync.register('c', { prefixes: [p], codec: text }))
    sync.start()
    await inSync(sync)
    await proxy.interrupt()
    await statusReaches(store.status$, 'degraded')
    // 300 revisions of 20 KiB values, each with a 20 KiB previous value: about 12 MiB to replay.
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          done(writer.put(`${p}${i}`, enc(big(`${'bcd'[round]}${i}`)))),
        ),
      )
    }
    await proxy.restore()
    await recorder.untilEquals(await listing(writer, p), '60s')
    expect(recorder.violations).toEqual([])
    expect(kinds(recorder.events).filter((kind) => kind !== 'change:live')).toEqual([
      'resync:startup',
    ])
    const changes = recorder.events.flatMap((event) =>
      event.kind === 'change' ? event.changes : [],
    )
    // Every one of the 300 puts, each once, in order per key (the recorder checked the prevs).
    expect(changes).toHaveLength(300)
  })

  it('status$ alone follows connectivity through its periodic probe (no watch needed)', async () => {
    const proxy = await startTcpProxy(server().clientPort)
    cleanups.push(() => proxy.close())
    const store = open({ endpoints: [proxy.url], statusInterval: '200ms', dialTimeout: '500ms' })
    const states = record(store.status$)
    await statusReaches(store.status$, 'ready')
    await proxy.interrupt()
    const degraded = await statusReaches(store.status$, 'degraded')
    expect(degraded.error).toMatchObject({ retryable: true })
    await proxy.restore()
    await statusReaches(store.status$, 'ready')
    expect(states).toEqual(['connecting', 'ready', 'degraded', 'ready'])
  })

  it('with resyncAfterReconnect, a reconnection relists and consumers get a full resync', async () => {
    const { proxy, store, writer } = await throughProxy({
      reconnectInterval: '300ms',
      resyncAfterReconnect: true,
    })
    const p = fresh('resync')
    await done(writer.put(`${p}a`, enc('1')))
    const sync = orchestrate(store, { resyncAfterReconnect: true })
    const recorder = recordConsumer(sync.register('c', { prefixes: [p], codec: text }))
    sync.start()
    await inSync(sync)
    await proxy.interrupt()
    await statusReaches(store.status$, 'degraded')
    await done(writer.put(`${p}b`, enc('2')))
    await proxy.restore()
    await recorder.untilEquals(await listing(writer, p), '30s')
    expect(recorder.violations).toEqual([])
    expect(kinds(recorder.events)).toEqual(['resync:startup', 'resync:reconnect'])
  })
})

describe('delayed start', () => {
  let etcd: EtcdServer | undefined
  afterEach(async () => {
    await etcd?.cleanup()
    etcd = undefined
  })

  it('with allowDelayedStart, the store starts while etcd is down and resyncs when it comes up', async () => {
    const port = await freePort()
    const store = open({
      endpoints: [`127.0.0.1:${port}`],
      allowDelayedStart: true,
      reconnectInterval: '300ms',
      dialTimeout: '500ms',
      statusInterval: '300ms',
    })
    const states = record(store.status$)
    const p = fresh('delayed')
    const sync = orchestrate(store)
    const recorder: ConsumerRecorder<string> = recordConsumer(
      sync.register('c', { prefixes: [p], codec: text }),
    )
    sync.start()
    // Well past the dial timeout (proving that the watch does not fail needs time to pass:
    // three dial timeouts), the store still waits.
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    expect(recorder.events).toEqual([])
    expect(states.every((state) => state === 'connecting')).toBe(true)
    expect(await firstValueFrom(sync.status$)).toMatchObject({ state: 'connecting' })

    etcd = await startEtcd({ clientPort: port })
    const writer = open({ endpoints: etcd.endpoints })
    await done(writer.put(`${p}x`, enc('1')))
    await recorder.untilEquals(await listing(writer, p), '30s')
    expect(recorder.events[0]).toMatchObject({ kind: 'resync', reason: 'startup' })
    expect(recorder.violations).toEqual([])
    await statusReaches(store.status$, 'ready')
  })

  it('without allowDelayedStart, a watch that cannot reach etcd within the dial timeout fails, saying what to do', async () => {
    const port = await freePort()
    const store = open({
      endpoints: [`127.0.0.1:${port}`],
      dialTimeout: '500ms',
      reconnectInterval: '200ms',
    })
    const error = await firstValueFrom(store.watch(['x/'])).catch((caught: unknown) => caught)
    expect(error).toMatchObject({ name: 'UnavailableError', code: 'unavailable' })
    expect((error as Error).message).toMatch(/allow-delayed-start/)
    expect((error as Error).message).toContain(`127.0.0.1:${port}`)
  })
})
