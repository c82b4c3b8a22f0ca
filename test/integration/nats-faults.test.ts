/**
 * NATS faults on real servers: the server a store is connected to killed (-9) in a three-server
 * cluster during writes; a single server restarted; the history a watch needs purged while the
 * store is cut off. Each test gets its own bucket.
 */
import { jetstreamManager } from '@nats-io/jetstream'
import { filter, firstValueFrom, lastValueFrom, timeout, type Subscription } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createNatsStore, type NatsStore } from '../../src/backends/nats/index.js'
import { createDatasync, string, type StoreEvent } from '../../src/index.js'
import { recordConsumer } from '../../src/testing/index.js'
import {
  NATS_TEST_TIMINGS,
  createNatsBucket,
  natsConnect,
  startNats,
  startNatsCluster,
  type NatsCluster,
  type NatsServer,
} from '../servers/nats.js'
import { pollUntil } from '../servers/index.js'
import { startTcpProxy } from '../support/tcp-proxy.js'

const text = string()
const enc = (value: string) => text.encode(value)
const START_MS = 180_000

/** Puts `key`, trying again while the cluster fails over (a put is idempotent here). */
async function putSurely(store: NatsStore, key: string, value: string): Promise<void> {
  await pollUntil(
    async () => {
      await lastValueFrom(store.put(key, enc(value)), { defaultValue: undefined })
      return true
    },
    { timeoutMs: 60_000, attemptTimeoutMs: 10_000, description: `put ${key}` },
  )
}

/**
 * Every key and value under `prefix`, read through `store`, as the recorder holds them; read
 * again while the cluster fails over.
 */
async function listed(store: NatsStore, prefix: string) {
  const items = await pollUntil(() => lastValueFrom(store.list(prefix)), {
    timeoutMs: 60_000,
    attemptTimeoutMs: 10_000,
    description: `a listing of ${prefix}`,
  })
  return items.map((item) => ({ ...item, value: text.decode(item.value) }))
}

describe('nats faults, three-server cluster', { timeout: 180_000 }, () => {
  let cluster: NatsCluster | undefined
  beforeAll(async () => {
    cluster = await startNatsCluster(3)
  }, START_MS)
  afterAll(async () => {
    await cluster?.cleanup()
  }, START_MS)

  it('kill -9 of the connected server during writes: the client moves on, the watch resumes, nothing is lost', async () => {
    if (cluster === undefined) throw new Error('the cluster did not start')
    const bucket = 'faults_kill'
    await createNatsBucket(cluster.urls, bucket, { replicas: 3 })
    const name = `faults-store-${process.pid}`
    const store = createNatsStore({
      servers: [...cluster.urls],
      bucket,
      name,
      ...NATS_TEST_TIMINGS,
    })
    const writer = createNatsStore({ servers: [...cluster.urls], bucket, ...NATS_TEST_TIMINGS })
    const sync = createDatasync(store, { ackTimeout: '10s' })
    const recorder = recordConsumer(sync.register('k', { prefixes: ['k/'], codec: text }))
    const snapshots: StoreEvent<Uint8Array>[] = []
    const states: string[] = []
    const statuses = store.status$.subscribe((status) => states.push(status.state))
    let watching: Subscription | undefined
    try {
      sync.start()
      await recorder.until((state) => state.size === 0, 30_000)
      watching = store.watch(['k/']).subscribe((event) => {
        if (event.type === 'snapshot') snapshots.push(event)
      })
      // A key nobody rewrites keeps the stream's first sequence low: the history after the
      // watch's last revision is provably whole, so it resumes (with every key rewritten during
      // the break, the stream's front moves past it and the watch relists instead: see README).
      await putSurely(writer, 'k/fixed', 'f')
      for (let i = 0; i < 40; i++) await putSurely(writer, `k/${i % 20}`, `a${i}`)
      const victim = await pollUntil(() => cluster?.connectedTo(name), {
        timeoutMs: 10_000,
        description: 'the server the store is connected to',
      })
      const writes = (async () => {
        for (let i = 0; i < 200; i++) await putSurely(writer, `k/${i % 25}`, `b${i}`)
      })()
      await recorder.until((state) => state.get('k/5')?.startsWith('b') === true, 30_000)
      await victim.kill()
      await writes
      await putSurely(writer, 'k/last', 'done')
      await recorder.untilEquals(await listed(writer, 'k/'), 60_000)
      const moved = await pollUntil(() => cluster?.connectedTo(name), {
        timeoutMs: 30_000,
        description: 'the store to connect to another server',
      })
      expect(moved).not.toBe(victim)
      // The connection was lost and came back: the watch broke and resumed.
      expect(states).toContain('degraded')
      // ... and comes back to ready (the consumers may converge before the client's status does).
      await firstValueFrom(
        store.status$.pipe(
          filter((status) => status.state === 'ready'),
          timeout(30_000),
        ),
      )
      expect(recorder.violations).toEqual([])
      // Resumed, not relisted: one resync (startup), and the raw watch saw one snapshot.
      expect(recorder.events.filter((event) => event.kind === 'resync')).toHaveLength(1)
      expect(snapshots.map((snapshot) => snapshot.type === 'snapshot' && snapshot.cause)).toEqual([
        'startup',
      ])
      await victim.start()
    } finally {
      watching?.unsubscribe()
      statuses.unsubscribe()
      sync.close()
      await store.close()
      await writer.close()
    }
  })
})

describe('nats faults, one server', { timeout: 180_000 }, () => {
  let server: NatsServer | undefined
  beforeAll(async () => {
    server = await startNats()
  }, START_MS)
  afterAll(async () => {
    await server?.cleanup()
  }, START_MS)

  it('a restarted server: the watch resumes with no resync and nothing is lost', async () => {
    if (server === undefined) throw new Error('nats-server did not start')
    const bucket = 'faults_restart'
    await createNatsBucket([server.url], bucket)
    const store = createNatsStore({ servers: server.url, bucket, ...NATS_TEST_TIMINGS })
    const writer = createNatsStore({ servers: server.url, bucket, ...NATS_TEST_TIMINGS })
    const sync = createDatasync(store, { ackTimeout: '10s' })
    const recorder = recordConsumer(sync.register('r', { prefixes: ['r/'], codec: text }))
    const causes: string[] = []
    const watching = store.watch(['r/']).subscribe((event) => {
      if (event.type === 'snapshot') causes.push(event.cause)
    })
    const states: string[] = []
    watching.add(store.status$.subscribe((status) => states.push(status.state)))
    try {
      for (let i = 0; i < 10; i++) await putSurely(writer, `r/${i}`, `before${i}`)
      sync.start()
      await recorder.untilEquals(await listed(writer, 'r/'), 30_000)
      await lastValueFrom(writer.delete('r/3'))
      await recorder.until((state) => !state.has('r/3'), 30_000)
      await server.kill()
      await server.start()
      for (let i = 0; i < 10; i += 2) await putSurely(writer, `r/${i}`, `after${i}`)
      await lastValueFrom(writer.delete('r/1'))
      await recorder.untilEquals(await listed(writer, 'r/'), 30_000)
      expect(recorder.violations).toEqual([])
      expect(recorder.events.filter((event) => event.kind === 'resync')).toHaveLength(1)
      expect(causes).toEqual(['startup'])
      expect(states).toContain('degraded')
      const changes = recorder.events.flatMap((event) =>
        event.kind === 'change' ? event.changes : [],
      )
      expect(changes.find((change) => change.key === 'r/1')).toMatchObject({
        op: 'delete',
        prev: 'before1',
      })
    } finally {
      watching.unsubscribe()
      sync.close()
      await store.close()
      await writer.close()
    }
  })

  it('history purged while disconnected: the watch relists (compacted) and consumers get the differences', async () => {
    if (server === undefined) throw new Error('nats-server did not start')
    const bucket = 'faults_purge'
    await createNatsBucket([server.url], bucket)
    const proxy = await startTcpProxy(server.port)
    const store = createNatsStore({
      servers: `nats://${proxy.address}`,
      bucket,
      discoverServers: false,
      ...NATS_TEST_TIMINGS,
    })
    const writer = createNatsStore({ servers: server.url, bucket, ...NATS_TEST_TIMINGS })
    const sync = createDatasync(store, { ackTimeout: '10s' })
    const recorder = recordConsumer(sync.register('g', { prefixes: ['g/'], codec: text }))
    const causes: string[] = []
    const watching = store.watch(['g/']).subscribe((event) => {
      if (event.type === 'snapshot') causes.push(event.cause)
    })
    const admin = await natsConnect([server.url])
    try {
      await putSurely(writer, 'g/keep', 'k')
      await putSurely(writer, 'g/change', 'c1')
      await putSurely(writer, 'g/drop', 'd')
      sync.start()
      await recorder.untilEquals(await listed(writer, 'g/'), 30_000)
      await proxy.interrupt()
      await putSurely(writer, 'g/change', 'c2')
      await lastValueFrom(writer.delete('g/drop'))
      await putSurely(writer, 'g/new', 'n')
      // As a bucket limit (max age, max bytes) would: everything before the delete marker goes,
      // g/keep and g/change's new value included.
      const jsm = await jetstreamManager(admin)
      const state = (await jsm.streams.info(`KV_${bucket}`)).state
      await jsm.streams.purge(`KV_${bucket}`, { seq: state.last_seq - 1 })
      await proxy.restore()
      await recorder.untilEquals(await listed(writer, 'g/'), 30_000)
      expect((await listed(writer, 'g/')).map((item) => item.key)).toEqual(['g/new'])
      expect(recorder.violations).toEqual([])
      expect(causes).toEqual(['startup', 'compacted'])
      const changes = recorder.events.flatMap((event) =>
        event.kind === 'change' ? event.changes : [],
      )
      const byKey = new Map(changes.map((change) => [change.key, change]))
      expect(byKey.get('g/keep')).toMatchObject({ op: 'delete', prev: 'k' })
      expect(byKey.get('g/drop')).toMatchObject({ op: 'delete', prev: 'd' })
      expect(byKey.get('g/change')).toMatchObject({ op: 'delete', prev: 'c1' })
      expect(byKey.get('g/new')).toMatchObject({ op: 'put', value: 'n' })
    } finally {
      watching.unsubscribe()
      sync.close()
      await store.close()
      await writer.close()
      await admin.close()
      await proxy.close()
    }
  })
})
