/**
 * The Redis store on a Cluster (three masters, three replicas): events from every master, one
 * writer's order kept across masters, transactions within one slot (and a clear error across
 * slots), and master failovers during a stream of writes, both a manual CLUSTER FAILOVER and a
 * killed master, each ending with every consumer holding exactly the store's state.
 */
import { Cluster } from 'ioredis'
import { filter, firstValueFrom, lastValueFrom, type Subscription } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CapabilityError,
  createDatasync,
  isRetryable,
  string,
  type Datasync,
  type StoreEvent,
} from '../../src/index.js'
import {
  createRedisStore,
  type RedisStore,
  type RedisStoreOptions,
} from '../../src/backends/redis/index.js'
import { keySlot } from '../../src/backends/redis/slots.js'
import { recordConsumer, type ConsumerRecorder } from '../../src/testing/index.js'
import { retried } from '../support/retry.js'
import {
  parseInfo,
  pollUntil,
  redisCommand,
  startRedisCluster,
  type RedisCluster,
  type RedisServer,
} from '../servers/index.js'

const text = string()
const enc = (value: string) => text.encode(value)
const dec = (raw: Uint8Array) => text.decode(raw)

let cluster: RedisCluster | undefined
let raw: Cluster | undefined
const stores: RedisStore[] = []
const syncs: Datasync<Uint8Array>[] = []

beforeAll(async () => {
  cluster = await startRedisCluster()
  raw = new Cluster(
    cluster.startupNodes.map((node) => ({ ...node })),
    {
      redisOptions: { protocol: 2 },
    },
  )
  raw.on('error', () => undefined)
})

afterAll(async () => {
  for (const sync of syncs) sync.close()
  await Promise.all(stores.map((store) => store.close()))
  raw?.disconnect()
  await cluster?.cleanup()
})

function store(): RedisStore {
  const options: RedisStoreOptions = {
    cluster: { nodes: cluster!.startupNodes },
    commandTimeout: '2s',
    heartbeatInterval: '500ms',
    maxReconnectDelay: '500ms',
  }
  const created = createRedisStore(options)
  stores.push(created)
  return created
}

function sync(over: RedisStore) {
  const instance = createDatasync(over, { ackTimeout: '10s' })
  syncs.push(instance)
  return instance
}

/** The master port serving each slot, from CLUSTER SLOTS on any live node. */
async function slotOwners(): Promise<Map<number, number>> {
  for (const node of cluster!.nodes) {
    if (!node.running || node.isPaused) continue
    try {
      const reply = (await redisCommand(node.port, 'CLUSTER', 'SLOTS')) as [
        number,
        number,
        [string, number],
      ][]
      const owners = new Map<number, number>()
      for (const [start, end, [, port]] of reply) {
        for (let slot = start; slot <= end; slot++) owners.set(slot, port)
      }
      return owners
    } catch {
      // try the next node
    }
  }
  throw new Error('no cluster node answers CLUSTER SLOTS')
}

async function put(over: RedisStore, key: string, value: string): Promise<void> {
  await retried(() => lastValueFrom(over.put(key, enc(value))), { retry: isRetryable })
}

/**
 * The store's listing. During a failover a listing may fail with a retryable error: it is polled
 * until it succeeds (for at most 30 s); any other error fails at once.
 */
async function listed(over: RedisStore, prefix: string) {
  const items = await retried(() => lastValueFrom(over.list(prefix)), { retry: isRetryable })
  return items.map((item) => ({ ...item, value: dec(item.value) }))
}

let prefixCount = 0
const fresh = () => `cluster-${process.pid}-${++prefixCount}/`

async function inSync(instance: Datasync<Uint8Array>) {
  await firstValueFrom(instance.status$.pipe(filter((status) => status.state === 'in-sync')))
}

/**
 * Keeps writing (through a store and through a plain client) while `fault` runs, then until
 * `after` more writes went through; every consumer must then hold exactly the store's state.
 */
async function failoverUnderWrites(
  fault: () => Promise<void>,
  keyPrefix: (prefix: string) => string = (prefix) => prefix,
): Promise<void> {
  const p = fresh()
  const s = store()
  const writer = store()
  const events: StoreEvent<Uint8Array>[] = []
  const watching: Subscription = s.watch([p]).subscribe((event) => events.push(event))
  const instance = sync(s)
  const recorders: [string[], ConsumerRecorder<string>][] = [
    [[p], recordConsumer(instance.register('all', { prefixes: [p], codec: text }))],
    [
      [`${keyPrefix(p)}a`, `${p}b`],
      recordConsumer(
        instance.register('ab', { prefixes: [`${keyPrefix(p)}a`, `${p}b`], codec: text }),
        { ackDelay: (event) => (event.kind === 'change' ? 2 : 0) },
      ),
    ],
  ]
  // Half the keys may share one hash slot (the slot a test moves), the rest spread out.
  const keys = Array.from(
    { length: 48 },
    (_, i) => `${i % 2 === 0 ? keyPrefix(p) : p}${'abcd'[i % 4]}${i}`,
  )
  for (const key of keys) await put(writer, key, 'initial')
  instance.start()
  await inSync(instance)
  await pollUntil(() => events.length > 0, { description: 'the first snapshot' })
  let writing = true
  let count = 0
  const writes = (async () => {
    for (let i = 0; writing; i++) {
      const key = keys[(i * 7) % keys.length]!
      if (i % 10 === 9) {
        try {
          await raw!.set(key, `raw${i}`)
        } catch {
          // the plain client may fail during the failover; the store's writes are what count
        }
      } else {
        await put(writer, key, `w${i}`)
      }
      count++
    }
  })()
  await pollUntil(() => count > 50, { description: 'writes before the fault' })
  await fault()
  const mark = count
  await pollUntil(() => count > mark + 100, {
    timeoutMs: 60_000,
    description: 'writes after the failover',
  })
  writing = false
  await writes
  for (const [prefixes, recorder] of recorders) {
    const expected = (await Promise.all(prefixes.map((prefix) => listed(s, prefix)))).flat()
    await recorder.untilEquals(expected, 60_000)
    expect(recorder.violations).toEqual([])
  }
  // This watch relists on its own schedule (its own backoff): wait for it.
  const causes = () => events.flatMap((event) => (event.type === 'snapshot' ? [event.cause] : []))
  await pollUntil(() => causes().length > 1, { description: 'the watch to relist' })
  expect(causes()[0]).toBe('startup')
  expect(causes().slice(1)).not.toContain('startup')
  watching.unsubscribe()
}

describe('redis cluster', () => {
  it('hears every master: writes to keys on all three reach the consumers', async () => {
    const p = fresh()
    const owners = await slotOwners()
    const s = store()
    const writer = store()
    const instance = sync(s)
    const recorder = recordConsumer(instance.register('all', { prefixes: [p], codec: text }))
    instance.start()
    await inSync(instance)
    const keys = Array.from({ length: 30 }, (_, i) => `${p}${i}`)
    const masters = new Set(keys.map((key) => owners.get(keySlot(key))))
    expect(masters.size).toBe(3)
    for (const [i, key] of keys.entries()) {
      if (i % 2 === 0) await put(writer, key, `store-${i}`)
      else await raw!.set(key, `raw-${i}`)
    }
    await raw!.del(keys[1]!)
    await recorder.untilEquals(await listed(s, p), 30_000)
    expect(recorder.state.size).toBe(29)
    expect(recorder.violations).toEqual([])
  })

  it('computes hash slots as the server does', async () => {
    const keys = [
      'plain',
      'user:{42}:name',
      '{}empty-tag',
      '{a}{b}',
      'x{}y{z}',
      '{unclosed',
      'ünïcødé/κλειδί',
      '',
      '{{nested}}',
    ]
    for (const key of keys) {
      expect(keySlot(key), key).toBe(
        await redisCommand(cluster!.ports[0]!, 'CLUSTER', 'KEYSLOT', key),
      )
    }
  })

  it("keeps one writer's order across masters", async () => {
    const p = fresh()
    const s = store()
    const writer = store()
    const events: StoreEvent<Uint8Array>[] = []
    const watching = s.watch([p]).subscribe((event) => events.push(event))
    await pollUntil(() => events.length > 0, { description: 'the snapshot' })
    const keys = Array.from({ length: 60 }, (_, i) => `${p}${i}`)
    for (const key of keys) await put(writer, key, 'v')
    await pollUntil(
      () => events.flatMap((e) => (e.type === 'changes' ? e.changes : [])).length === keys.length,
      { description: 'every write' },
    )
    const order = events.flatMap((e) => (e.type === 'changes' ? e.changes.map((c) => c.key) : []))
    expect(order).toEqual(keys)
    watching.unsubscribe()
  })

  it('keeps a write before the read made after it when the masters lost their scripts', async () => {
    // A master new since a failover has no script; EVALSHA would be refused and retried after
    // the read sent behind it, which would then miss the write.
    const p = fresh()
    const s = store()
    const keys = Array.from({ length: 12 }, (_, i) => `${p}${i}`)
    for (const key of keys) await put(s, key, 'old')
    for (const port of new Set((await slotOwners()).values())) {
      await redisCommand(port, 'SCRIPT', 'FLUSH')
    }
    const reads = keys.map((key) => {
      const written = lastValueFrom(s.put(key, enc('new')))
      return { written, read: lastValueFrom(s.get(key)) }
    })
    for (const { written, read } of reads) {
      await written
      const got = await read
      expect(got && dec(got.value)).toBe('new')
    }
  })
  it('runs a transaction within one hash slot as one change event; across slots it says why not', async () => {
    const p = fresh()
    const s = store()
    const writer = store()
    const w: StoreEvent<Uint8Array>[] = []
    const watching = s.watch([p]).subscribe((event) => w.push(event))
    await pollUntil(() => w.length > 0, { description: 'the snapshot' })
    const a = `${p}{user1}:name`
    const b = `${p}{user1}:mail`
    const result = await lastValueFrom(
      writer.txn(
        [
          { op: 'put', key: a, value: enc('Ann') },
          { op: 'put', key: b, value: enc('ann@example.org') },
        ],
        { conditions: [{ key: a, exists: false }] },
      ),
    )
    expect(result.succeeded).toBe(true)
    await pollUntil(() => w.length === 2, { description: 'the transaction' })
    const event = w[1]
    expect(event?.type === 'changes' && event.changes.map((c) => c.key)).toEqual([a, b])

    const across: unknown = await lastValueFrom(
      writer.txn([
        { op: 'put', key: `${p}x`, value: enc('1') },
        { op: 'put', key: `${p}y`, value: enc('2') },
      ]),
    ).catch((error: unknown) => error)
    expect(across).toBeInstanceOf(CapabilityError)
    expect((across as Error).message).toMatch(
      /transactions across hash slots on a Redis Cluster: '.*x' is in slot \d+ and '.*y' in slot \d+; .*hash tag/,
    )
    const prefixDelete: unknown = await lastValueFrom(
      writer.txn([{ op: 'delete', key: p, prefix: true }]),
    ).catch((error: unknown) => error)
    expect(prefixDelete).toBeInstanceOf(CapabilityError)
    // A prefix delete outside a transaction works on every master (not atomically).
    expect(await lastValueFrom(writer.delete(p, { prefix: true }))).toEqual({ deleted: 2 })
    watching.unsubscribe()
  })

  it('a slot moved to another master during writes', async () => {
    const tag = `{move-${process.pid}}`
    const slot = keySlot(tag)
    await failoverUnderWrites(
      async () => {
        const owners = await slotOwners()
        const sourcePort = owners.get(slot)!
        const targetPort = [...new Set(owners.values())].find((port) => port !== sourcePort)!
        const id = async (port: number) => String(await redisCommand(port, 'CLUSTER', 'MYID'))
        const [sourceId, targetId] = await Promise.all([id(sourcePort), id(targetPort)])
        await redisCommand(targetPort, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId)
        await redisCommand(sourcePort, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId)
        for (;;) {
          const keys = (await redisCommand(
            sourcePort,
            'CLUSTER',
            'GETKEYSINSLOT',
            slot,
            100,
          )) as string[]
          if (keys.length === 0) break
          await redisCommand(
            sourcePort,
            'MIGRATE',
            '127.0.0.1',
            targetPort,
            '',
            0,
            5000,
            'REPLACE',
            'KEYS',
            ...keys,
          )
        }
        for (const node of cluster!.nodes) {
          if (!node.running) continue
          await redisCommand(node.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', targetId).catch(
            () => undefined,
          )
        }
        await pollUntil(async () => (await slotOwners()).get(slot) === targetPort, {
          timeoutMs: 30_000,
          description: `slot ${slot} to move to ${targetPort}`,
        })
      },
      (p) => `${p}${tag}/`,
    )
  })

  it('a manual failover (CLUSTER FAILOVER on a replica) during writes', async () => {
    await failoverUnderWrites(async () => {
      const replica = await findReplica()
      await redisCommand(replica.port, 'CLUSTER', 'FAILOVER')
      await pollUntil(async () => (await role(replica)) === 'master', {
        timeoutMs: 30_000,
        description: `replica ${replica.port} to become master`,
      })
    })
  })

  it('a killed master during writes: its replica takes over', async () => {
    await failoverUnderWrites(async () => {
      const replica = await findReplica()
      const info = parseInfo(String(await redisCommand(replica.port, 'INFO', 'replication')))
      const master = cluster!.nodes.find((node) => node.port === Number(info.master_port))!
      await master.kill()
      await pollUntil(async () => (await role(replica)) === 'master', {
        timeoutMs: 60_000,
        description: `replica ${replica.port} to take over from the killed master`,
      })
    })
  })
})

async function role(node: RedisServer): Promise<string> {
  return parseInfo(String(await redisCommand(node.port, 'INFO', 'replication'))).role ?? ''
}

async function findReplica(): Promise<RedisServer> {
  for (const node of cluster!.nodes) {
    if (!node.running) continue
    const info = parseInfo(String(await redisCommand(node.port, 'INFO', 'replication')))
    if (info.role === 'slave' && info.master_link_status === 'up') return node
  }
  throw new Error('no replica with a live link to its master')
}
