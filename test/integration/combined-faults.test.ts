/**
 * A routed store of files (FileDB, for defaults) and etcd (for live configuration) through faults
 * of etcd on a real member: kill -9 while the files change, and a start while etcd is down. The
 * file source keeps reaching the consumers while etcd is away; etcd's prefixes heal by themselves
 * when it is back; every consumer ends holding exactly the combined state, with correct previous
 * values (the recorder's violations list is empty).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { filter, firstValueFrom, lastValueFrom, type Subscription } from 'rxjs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createEtcdStore, type EtcdStoreOptions } from '../../src/backends/etcd/index.js'
import { createFileStore } from '../../src/backends/filedb/index.js'
import {
  createDatasync,
  createRoutedStore,
  string,
  type Change,
  type CombinedStore,
  type Datasync,
  type Duration,
  type KvStore,
  type StoreStatus,
} from '../../src/index.js'
import { recordConsumer, type ConsumerRecorder } from '../../src/testing/index.js'
import { freePort, startEtcd, type EtcdServer } from '../servers/index.js'
import { done, statusReaches } from '../support/etcd.js'
import { retried } from '../support/retry.js'
import { startTcpProxy } from '../support/tcp-proxy.js'
import { fileWriter } from '../conformance/file-writer.js'

const text = string()
const enc = (value: string) => text.encode(value)

let prefixCounter = 0
const fresh = (name: string) => `combined-${process.pid}-${++prefixCounter}-${name}/`

/** Everything a test opened, closed after it whatever happened (last opened, first closed). */
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A FileDB store over a fresh directory, and the writer that rewrites its files. */
async function files() {
  const dir = await mkdtemp(join(tmpdir(), 'combined-faults-'))
  const data = join(dir, 'data')
  await mkdir(data)
  const store = createFileStore({ paths: [data], settle: 0 })
  cleanups.push(async () => {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })
  return { store, writer: fileWriter(store, data) }
}

function etcdStore(options: EtcdStoreOptions): KvStore {
  const store = createEtcdStore(options)
  cleanups.push(() => store.close())
  return store
}

/** Routes `p + 'defaults/'` to the files and `p + 'config/'` to etcd. */
function routed(p: string, file: KvStore, live: KvStore, startTimeout: Duration = '10s') {
  const store = createRoutedStore(
    {
      [`${p}defaults/`]: { name: 'defaults', store: file },
      [`${p}config/`]: { name: 'config', store: live },
    },
    { startTimeout },
  )
  cleanups.push(() => store.close())
  return store
}

/** Three consumers: everything, the defaults only, the live configuration only. */
function consumers(store: CombinedStore, p: string) {
  const sync: Datasync<Uint8Array> = createDatasync(store, { ackTimeout: '10s' })
  cleanups.push(() => {
    sync.close()
  })
  const register = (name: string, prefix: string) =>
    recordConsumer(sync.register(name, { prefixes: [prefix], codec: text }))
  const all = register('all', p)
  const defaults = register('defaults', `${p}defaults/`)
  const config = register('config', `${p}config/`)
  sync.start()
  return { sync, all, defaults, config, each: [all, defaults, config] as const }
}

function record<T>(source: { subscribe(next: (value: T) => void): Subscription }): T[] {
  const values: T[] = []
  const subscription = source.subscribe((value) => values.push(value))
  cleanups.push(() => {
    subscription.unsubscribe()
  })
  return values
}

function changes(recorder: ConsumerRecorder<string>): Change<string>[] {
  return recorder.events.flatMap((event) => (event.kind === 'change' ? event.changes : []))
}

/** Every key under `prefix` with its decoded value, from `store`. */
async function listing(store: KvStore, prefix: string) {
  const items = await retried(() => lastValueFrom(store.list(prefix)))
  return items.map((item) => ({ ...item, value: text.decode(item.value) }))
}

describe('routed files + etcd: etcd killed', () => {
  let etcd: EtcdServer | undefined
  beforeAll(async () => {
    etcd = await startEtcd()
  })
  afterAll(async () => {
    await etcd?.cleanup()
  })

  it('kill -9 of etcd while the files change: file changes keep flowing, etcd heals after its restart, consumers end exact with correct prev', async () => {
    if (etcd === undefined) throw new Error('etcd did not start')
    const server = etcd
    // The store reaches etcd through a proxy kept cut for a while after the restart, so the
    // writes below certainly happen while the store is away.
    const proxy = await startTcpProxy(server.clientPort)
    cleanups.push(() => proxy.close())
    const live = etcdStore({
      endpoints: [proxy.url],
      reconnectInterval: '300ms',
      statusInterval: '300ms',
    })
    const liveWriter = etcdStore({ endpoints: server.endpoints })
    const file = await files()
    const p = fresh('kill')
    const store = routed(p, file.store, live)
    const writer = routed(p, file.writer, liveWriter)
    for (let i = 1; i <= 3; i++) {
      await done(writer.put(`${p}defaults/${i}`, enc(`d${i}`)))
      await done(writer.put(`${p}config/${i}`, enc(`c${i}`)))
    }
    const states = record<StoreStatus>(store.status$)
    const { all, defaults, config, each } = consumers(store, p)
    await all.untilEquals(await listing(writer, p), '30s')

    await server.kill()
    await statusReaches(store.status$, 'degraded')
    // The file source goes on: each change reaches the consumers while etcd is dead.
    const fileChanges: [string, string | undefined][] = [
      ['defaults/1', 'd1-outage'],
      ['defaults/2', undefined],
      ['defaults/new', 'fresh'],
    ]
    for (const [key, value] of fileChanges) {
      if (value === undefined) await done(writer.delete(p + key))
      else await done(writer.put(p + key, enc(value)))
      for (const recorder of [all, defaults]) {
        await recorder.until((state) => state.get(p + key) === value, '20s')
      }
      expect((await firstValueFrom(store.status$)).state).toBe('degraded')
    }
    const sources = await firstValueFrom(store.sources$)
    expect(sources['defaults']?.state).toBe('ready')
    expect(sources['config']?.state).toBe('degraded')

    await proxy.interrupt()
    await server.start()
    await retried(() => done(liveWriter.put(`${p}config/1`, enc('c1-restarted'))))
    await retried(() => done(liveWriter.delete(`${p}config/2`)))
    await retried(() => done(liveWriter.put(`${p}config/new`, enc('new'))))
    await done(writer.put(`${p}defaults/3`, enc('d3-while-cut')))
    await all.until((state) => state.get(`${p}defaults/3`) === 'd3-while-cut', '20s')
    expect(config.events.filter((event) => event.kind === 'change')).toHaveLength(0)
    await proxy.restore()
    await statusReaches(store.status$, 'ready')

    const expected = await listing(writer, p)
    await all.untilEquals(expected, '30s')
    await defaults.untilEquals(await listing(writer, `${p}defaults/`), '30s')
    await config.untilEquals(await listing(writer, `${p}config/`), '30s')
    for (const recorder of each) {
      expect(recorder.violations).toEqual([])
      expect(recorder.events.filter((event) => event.kind === 'resync')).toHaveLength(1)
    }
    const seen = changes(all)
    const find = (key: string) => seen.filter((change) => change.key === p + key)
    expect(find('defaults/1')).toMatchObject([{ op: 'put', prev: 'd1', value: 'd1-outage' }])
    expect(find('defaults/2')).toMatchObject([{ op: 'delete', prev: 'd2' }])
    expect(find('config/1')).toMatchObject([{ op: 'put', prev: 'c1', value: 'c1-restarted' }])
    expect(find('config/2')).toMatchObject([{ op: 'delete', prev: 'c2' }])
    expect(find('config/new')).toMatchObject([{ op: 'put', value: 'new' }])
    expect(states.map((status) => status.state)).toContain('degraded')
    expect(states.at(-1)?.state).toBe('ready')
  })
})

describe('routed files + etcd: etcd down at start', () => {
  let etcd: EtcdServer | undefined
  afterEach(async () => {
    await etcd?.cleanup()
    etcd = undefined
  })

  it('the files resync at the start timeout, the store is degraded naming etcd, and etcd keys arrive as changes when it comes up', async () => {
    const port = await freePort()
    const live = etcdStore({
      endpoints: [`127.0.0.1:${port}`],
      allowDelayedStart: true,
      reconnectInterval: '300ms',
      dialTimeout: '500ms',
      statusInterval: '300ms',
    })
    const file = await files()
    const p = fresh('delayed')
    await done(file.writer.put(`${p}defaults/mtu`, enc('1500')))
    const store = routed(p, file.store, live, '1s')
    const { all, config, each } = consumers(store, p)
    await all.until((state) => state.get(`${p}defaults/mtu`) === '1500', '20s')
    expect(all.events.map((event) => event.kind)).toEqual(['resync'])
    const degraded = await statusReaches(store.status$, 'degraded')
    expect(degraded.error?.message).toContain("source 'config' (etcd)")
    // The files go on while etcd is away.
    await done(file.writer.put(`${p}defaults/mtu`, enc('9000')))
    await all.until((state) => state.get(`${p}defaults/mtu`) === '9000', '20s')

    etcd = await startEtcd({ clientPort: port })
    const liveWriter = etcdStore({ endpoints: etcd.endpoints })
    await done(liveWriter.put(`${p}config/mtu`, enc('1400')))
    await config.until((state) => state.get(`${p}config/mtu`) === '1400', '30s')
    await all.until((state) => state.get(`${p}config/mtu`) === '1400', '30s')
    await firstValueFrom(store.status$.pipe(filter((status) => status.state === 'ready')))
    for (const recorder of each) expect(recorder.violations).toEqual([])
    expect(all.state).toEqual(
      new Map([
        [`${p}config/mtu`, '1400'],
        [`${p}defaults/mtu`, '9000'],
      ]),
    )
    expect(config.events.map((event) => event.kind)).toEqual(['resync', 'change'])
  })
})
