/**
 * The Redis store against real redis-server processes (one node): keyspace configuration,
 * writes by other clients (set, append, rename, expire, evict, delete), TTL expiry, ordering and
 * per-consumer prev values under concurrent writes, the pub/sub connection killed during a
 * stream of writes, a paused server, authentication, large listings, transactions and close.
 */
import { Redis } from 'ioredis'
import {
  filter,
  firstValueFrom,
  lastValueFrom,
  take,
  timeout,
  toArray,
  type Subscription,
} from 'rxjs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  AuthError,
  ClosedError,
  ConfigError,
  DatasyncError,
  ZERO_REVISION,
  createDatasync,
  revision,
  string,
  type ChangeEvent,
  type Datasync,
  type StoreEvent,
  type StoreStatus,
} from '../../src/index.js'
import {
  createRedisStore,
  type RedisStore,
  type RedisStoreOptions,
} from '../../src/backends/redis/index.js'
import { recordConsumer, type ConsumerRecorder } from '../../src/testing/index.js'
import {
  freePort,
  pollUntil,
  redisCommand,
  redisInfo,
  startRedis,
  type RedisServer,
} from '../servers/index.js'

const text = string()
const enc = (value: string) => text.encode(value)
const dec = (raw: Uint8Array) => text.decode(raw)

let server: RedisServer
let raw: Redis
const servers: RedisServer[] = []
const stores: RedisStore[] = []
const syncs: Datasync<Uint8Array>[] = []
const clients: Redis[] = []

beforeAll(async () => {
  // No notify-keyspace-events: the store turns on what it needs.
  server = await startRedis({ name: 'redis-integration' })
  servers.push(server)
  raw = client(server.port)
})

afterEach(async () => {
  for (const sync of syncs.splice(0)) sync.close()
  await Promise.all(stores.splice(0).map((store) => store.close()))
})

afterAll(async () => {
  for (const c of clients) c.disconnect()
  await Promise.all(servers.map((s) => s.cleanup()))
})

/** A plain ioredis client: the "other application" writing to Redis. */
function client(port: number): Redis {
  const c = new Redis({ port, host: '127.0.0.1', protocol: 2, maxRetriesPerRequest: 1 })
  c.on('error', () => undefined)
  clients.push(c)
  return c
}

function store(options: Partial<RedisStoreOptions> = {}, port = server.port): RedisStore {
  const created = createRedisStore({
    node: { host: '127.0.0.1', port },
    maxReconnectDelay: '500ms',
    heartbeatInterval: '500ms',
    commandTimeout: '2s',
    ...options,
  })
  stores.push(created)
  return created
}

function sync(over: RedisStore, options: { resyncAfterReconnect?: boolean } = {}) {
  const instance = createDatasync(over, { ackTimeout: '10s', ...options })
  syncs.push(instance)
  return instance
}

let prefixCount = 0
function fresh(): string {
  return `it-${process.pid}-${++prefixCount}/`
}

async function listed(over: RedisStore, prefix: string) {
  return (await lastValueFrom(over.list(prefix))).map((item) => ({
    ...item,
    value: dec(item.value),
  }))
}

function changes(recorder: ConsumerRecorder<string>, p: string): string[] {
  return recorder.events
    .filter((event): event is ChangeEvent<string> => event.kind === 'change')
    .flatMap((event) =>
      event.changes.map(
        (c) =>
          `${c.op} ${c.key.slice(p.length)}${c.op === 'put' ? `=${c.value}` : ''} prev=${c.prev ?? '-'}`,
      ),
    )
}

/** Collects a store watch's events until stopped. */
function collect(over: RedisStore, prefixes: string[]) {
  const events: StoreEvent<Uint8Array>[] = []
  const subscription: Subscription = over.watch(prefixes).subscribe((event) => events.push(event))
  return {
    events,
    stop: () => {
      subscription.unsubscribe()
    },
    snapshots: () => events.filter((event) => event.type === 'snapshot'),
  }
}

function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<true> {
  return pollUntil(async () => (await check()) || undefined, { timeoutMs, description: what })
}

describe('keyspace notifications setting', () => {
  it('turns on the classes it needs, keeping those already set', async () => {
    const own = await startRedis({ name: 'redis-notify', notifyKeyspaceEvents: 'El' })
    servers.push(own)
    const s = store({}, own.port)
    await firstValueFrom(s.watch(['x/']))
    const [, flags] = (await own.command('CONFIG', 'GET', 'notify-keyspace-events')) as string[]
    for (const flag of ['K', 'E', 'g', '$', 'l', 'x', 'e']) expect(flags).toContain(flag)
  })

  it('fails with a ConfigError naming the missing classes when it may not set them', async () => {
    const own = await startRedis({ name: 'redis-notify-off', notifyKeyspaceEvents: 'Kg' })
    servers.push(own)
    const s = store({ keyspaceEvents: 'verify' }, own.port)
    const error: unknown = await firstValueFrom(s.watch(['x/'])).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).field).toBe('notify-keyspace-events')
    expect((error as Error).message).toContain("the watch also needs the classes '$xe'")
    // The server was left alone.
    expect(await own.command('CONFIG', 'GET', 'notify-keyspace-events')).toEqual([
      'notify-keyspace-events',
      'gK',
    ])
  })

  it('fails with a ConfigError when CONFIG is disabled and the classes are missing', async () => {
    const own = await startRedis({
      name: 'redis-noconfig',
      extraArgs: ['--rename-command', 'CONFIG', ''],
    })
    servers.push(own)
    const error: unknown = await firstValueFrom(store({}, own.port).watch(['x/'])).catch(
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as Error).message).toMatch(/notify-keyspace-events.*'assume'/)
    // With the classes in the server's own configuration, 'assume' works without CONFIG.
    const configured = await startRedis({
      name: 'redis-noconfig-kea',
      notifyKeyspaceEvents: 'KEA',
      extraArgs: ['--rename-command', 'CONFIG', ''],
    })
    servers.push(configured)
    const s = store({ keyspaceEvents: 'assume' }, configured.port)
    const w = collect(s, ['x/'])
    await waitFor(() => w.snapshots().length === 1, 'the snapshot')
    await client(configured.port).set('x/1', 'v')
    await waitFor(() => w.events.length === 2, 'the change')
    w.stop()
  })
})

describe('writes by other clients', () => {
  it('reports set, append, incr, rename, expire and delete, with prev values', async () => {
    const p = fresh()
    const s = store()
    await raw.set(`${p}a`, 'one')
    const instance = sync(s)
    const recorder = recordConsumer(instance.register('c', { prefixes: [p], codec: text }))
    instance.start()
    await recorder.until((state) => state.get(`${p}a`) === 'one')
    // Someone else's message on the store's write channel is ignored.
    await raw.publish('__rx-datasync__:writes@0', 'not a write message')
    await raw.set(`${p}a`, 'two')
    await recorder.until((state) => state.get(`${p}a`) === 'two')
    await raw.append(`${p}a`, '+')
    await recorder.until((state) => state.get(`${p}a`) === 'two+')
    await raw.incr(`${p}n`)
    await recorder.until((state) => state.get(`${p}n`) === '1')
    await raw.rename(`${p}a`, `${p}b`)
    await recorder.until((state) => state.get(`${p}b`) === 'two+' && !state.has(`${p}a`))
    await raw.pexpire(`${p}b`, 50)
    await recorder.until((state) => !state.has(`${p}b`))
    await raw.del(`${p}n`)
    await recorder.until((state) => state.size === 0)
    const seen = changes(recorder, p)
    expect(seen).toEqual([
      'put a=two prev=one',
      'put a=two+ prev=two',
      'put n=1 prev=-',
      ...(seen[3]?.startsWith('delete')
        ? ['delete a prev=two+', 'put b=two+ prev=-']
        : ['put b=two+ prev=-', 'delete a prev=two+']),
      'delete b prev=two+',
      'delete n prev=1',
    ])
    expect(recorder.violations).toEqual([])
  })

  it('ignores keys that are not strings, in listings and in watches', async () => {
    const p = fresh()
    const s = store()
    await raw.lpush(`${p}list`, 'x')
    await raw.set(`${p}str`, 'v')
    const w = collect(s, [p])
    await waitFor(() => w.snapshots().length === 1, 'the snapshot')
    await raw.rpush(`${p}list`, 'y')
    await raw.hset(`${p}hash`, 'f', 'v')
    await raw.set(`${p}str`, 'w')
    await waitFor(() => w.events.length === 2, 'the change of the string key')
    expect(await lastValueFrom(s.listKeys(p))).toEqual([`${p}str`])
    const first = w.events[0]
    expect(first?.type === 'snapshot' && first.items.map((item) => item.key)).toEqual([`${p}str`])
    const second = w.events[1]
    expect(second?.type === 'changes' && second.changes.map((c) => c.key)).toEqual([`${p}str`])
    w.stop()
  })

  it('evictions reach consumers as deletes carrying the last value', async () => {
    const own = await startRedis({
      name: 'redis-evict',
      extraArgs: ['--maxmemory', '3mb', '--maxmemory-policy', 'allkeys-random'],
    })
    servers.push(own)
    const p = fresh()
    const s = store({}, own.port)
    const instance = sync(s)
    const recorder = recordConsumer(instance.register('c', { prefixes: [p], codec: text }))
    instance.start()
    await firstValueFrom(instance.status$.pipe(filter((status) => status.state === 'in-sync')))
    const writer = client(own.port)
    const value = 'v'.repeat(1000)
    for (let i = 0; i < 6000; i++) {
      await writer.set(`${p}${i}`, `${i}:${value}`)
      if (i % 500 === 499 && Number((await redisInfo(own.port, 'stats')).evicted_keys) > 50) break
    }
    expect(Number((await redisInfo(own.port, 'stats')).evicted_keys)).toBeGreaterThan(0)
    // Lift the limit, or the listing's own replies would make the server evict more meanwhile.
    await writer.config('SET', 'maxmemory', '0')
    await recorder.untilEquals(await listed(s, p), 30_000)
    expect(recorder.violations).toEqual([])
    const deletes = recorder.events
      .flatMap((event) => (event.kind === 'change' ? event.changes : []))
      .filter((c) => c.op === 'delete')
    expect(deletes.length).toBeGreaterThan(0)
    for (const d of deletes) expect(d.prev).toBe(`${d.key.slice(p.length)}:${value}`)
  })
})

describe('TTL', () => {
  it('an expiry reaches consumers as a delete carrying the last value', async () => {
    const p = fresh()
    const s = store()
    const writer = store()
    const instance = sync(s)
    const all = recordConsumer(instance.register('all', { prefixes: [p], codec: text }))
    const one = recordConsumer(instance.register('one', { prefixes: [`${p}b`], codec: text }))
    instance.start()
    await firstValueFrom(instance.status$.pipe(filter((status) => status.state === 'in-sync')))
    await lastValueFrom(writer.put(`${p}a`, enc('a1')))
    await lastValueFrom(writer.put(`${p}a`, enc('a2'), { ttl: '300ms' }))
    await lastValueFrom(
      writer.txn([
        { op: 'put', key: `${p}b`, value: enc('b1'), ttl: 600 },
        { op: 'put', key: `${p}c`, value: enc('c1') },
      ]),
    )
    await all.until((state) => state.size === 1 && state.get(`${p}c`) === 'c1')
    await one.until((state) => state.size === 0)
    expect(changes(all, p)).toEqual([
      'put a=a1 prev=-',
      'put a=a2 prev=a1',
      'put b=b1 prev=-',
      'put c=c1 prev=-',
      ...(changes(all, p)[4] === 'delete a prev=a2'
        ? ['delete a prev=a2', 'delete b prev=b1']
        : ['delete b prev=b1', 'delete a prev=a2']),
    ])
    expect(changes(one, p)).toEqual(['put b=b1 prev=-', 'delete b prev=b1'])
    expect(all.violations).toEqual([])
    expect(one.violations).toEqual([])
    expect(await lastValueFrom(s.get(`${p}a`))).toBeUndefined()
  })
})

describe('ordering and prev values under concurrent writes', () => {
  it('gives every consumer its own prev values while stores and other clients write many keys', async () => {
    const p = fresh()
    const s = store()
    const writers = [store(), store(), store()]
    const instance = sync(s)
    const specs = [
      { id: 'all', prefixes: [p] },
      { id: 'even', prefixes: [`${p}k0`, `${p}k2`, `${p}k4`, `${p}k6`, `${p}k8`] },
      { id: 'low', prefixes: [`${p}k0`, `${p}k1`, `${p}k2`, `${p}n`] },
    ]
    const recorders = specs.map((spec) =>
      recordConsumer(instance.register(spec.id, { prefixes: spec.prefixes, codec: text }), {
        ackDelay: (event) => (spec.id === 'low' && event.kind === 'change' ? 3 : 0),
      }),
    )
    const w = collect(s, [p])
    instance.start()
    await firstValueFrom(instance.status$.pipe(filter((status) => status.state === 'in-sync')))
    const keys = Array.from({ length: 60 }, (_, i) => `${p}k${i % 10}/${i}`)
    let step = 0
    const storeWriter = async (writer: RedisStore, id: number) => {
      for (let i = 0; i < 150; i++) {
        const key = keys[(i * 7 + id * 13) % keys.length]!
        if (i % 11 === 10) await lastValueFrom(writer.delete(key))
        else await lastValueFrom(writer.put(key, enc(`w${id}-${++step}`)))
      }
    }
    const counters = Array.from({ length: 8 }, (_, i) => `${p}n/${i}`)
    const otherClient = async (c: Redis) => {
      for (let i = 0; i < 150; i++) {
        const key = keys[(i * 5) % keys.length]!
        if (i % 3 === 0) await c.incr(counters[i % counters.length]!)
        else if (i % 17 === 0) await c.del(key)
        else await c.set(key, `raw-${++step}`)
      }
    }
    await Promise.all([
      ...writers.map((writer, id) => storeWriter(writer, id)),
      otherClient(client(server.port)),
      otherClient(client(server.port)),
    ])
    for (const [index, spec] of specs.entries()) {
      const expected = (await Promise.all(spec.prefixes.map((prefix) => listed(s, prefix)))).flat()
      await recorders[index]!.untilEquals(expected, 30_000)
      expect(recorders[index]!.violations, spec.id).toEqual([])
    }
    // The counters only grow on the server: a watch must never show one going back. The collected
    // watch is a second watch: wait until it has reached every counter's final value.
    const finals = await Promise.all(counters.map((counter) => raw.get(counter)))
    const last = (key: string) => {
      let value: string | undefined
      for (const event of w.events) {
        const items = event.type === 'snapshot' ? event.items : event.changes
        for (const item of items) {
          if (item.key === key) value = 'value' in item && item.value ? dec(item.value) : undefined
        }
      }
      return value
    }
    await waitFor(
      () => counters.every((counter, i) => last(counter) === (finals[i] ?? undefined)),
      'the collected watch to reach the final counts',
    )
    const history = new Map<string, number[]>()
    for (const event of w.events) {
      const items = event.type === 'snapshot' ? event.items : event.changes
      for (const item of items) {
        if (!item.key.startsWith(`${p}n/`) || !('value' in item) || item.value === undefined)
          continue
        const values = history.get(item.key) ?? []
        values.push(Number(dec(item.value)))
        history.set(item.key, values)
      }
    }
    expect(history.size).toBe(counters.length)
    for (const values of history.values()) {
      expect(values).toEqual([...values].sort((a, b) => a - b))
      expect(new Set(values).size).toBe(values.length)
    }
    w.stop()
  })

  it("never shows a key going back in time when a store and another client write it at once, with watchMemory: 'values'", async () => {
    await neverBackInTime({ watchMemory: 'values' })
  })

  it("never shows a key going back in time, nor twice, with watchMemory: 'lean'", async () => {
    await neverBackInTime({ watchMemory: 'lean' })
  })

  for (const watchMemory of ['values', 'lean'] as const) {
    it(`ends with the server's values when a store's writes and another client's go back and forth (${watchMemory})`, async () => {
      // Values that come back (a, c, a, b, a ...): a read whose value equals one reported before
      // a store's write message must still be reported after that message.
      const p = fresh()
      const s = store({ watchMemory })
      const writer = store()
      const keys = Array.from({ length: 4 }, (_, i) => `${p}k${i}`)
      const w = collect(s, [p])
      await waitFor(() => w.snapshots().length === 1, 'the snapshot')
      const other = client(server.port)
      const flip = async (key: string) => {
        for (let i = 0; i < 150; i++) {
          await Promise.all([
            other.set(key, 'a'),
            lastValueFrom(writer.put(key, enc('c'))),
            other.set(key, i % 2 ? 'b' : 'a'),
          ])
        }
      }
      await Promise.all(keys.map(flip))
      const held = new Map<string, string | undefined>()
      await waitFor(async () => {
        for (const event of w.events.splice(0)) {
          const items = event.type === 'snapshot' ? event.items : event.changes
          for (const item of items) {
            held.set(item.key, 'value' in item && item.value ? dec(item.value) : undefined)
          }
        }
        const server_ = await Promise.all(keys.map((key) => raw.get(key)))
        return keys.every((key, i) => held.get(key) === (server_[i] ?? undefined))
      }, "the watch to hold the server's values")
      w.stop()
    })
  }
})

/**
 * Both writers add 1 to the same keys: the other client with INCR (a keyspace event the watch
 * must read after), the store with a compare-and-set transaction (a write message with its
 * value). The server's order makes each key count up by one; the watch must only count up (a
 * value reported twice would not).
 */
async function neverBackInTime(options: Partial<RedisStoreOptions>): Promise<void> {
  const p = fresh()
  const s = store(options)
  const writer = store()
  const keys = Array.from({ length: 5 }, (_, i) => `${p}c${i}`)
  for (const key of keys) await raw.set(key, '0')
  const w = collect(s, [p])
  await waitFor(() => w.snapshots().length === 1, 'the snapshot')
  const other = client(server.port)
  const incr = async () => {
    for (let i = 0; i < 200; i++) await other.incr(keys[i % keys.length]!)
  }
  const cas = async () => {
    for (let i = 0; i < 200; i++) {
      const key = keys[(i * 3) % keys.length]!
      for (;;) {
        const current = await lastValueFrom(writer.get(key))
        const next = String(Number(dec(current!.value)) + 1)
        const result = await lastValueFrom(
          writer.txn([{ op: 'put', key, value: enc(next) }], {
            conditions: [{ key, value: current!.value }],
          }),
        )
        if (result.succeeded) break
      }
    }
  }
  await Promise.all([incr(), cas(), incr()])
  const final = new Map((await listed(s, p)).map((item) => [item.key, Number(item.value)]))
  expect([...final.values()].reduce((a, b) => a + b, 0)).toBe(600)
  const latest = new Map<string, number>()
  await waitFor(() => {
    for (const event of w.events.splice(0)) {
      const items = event.type === 'snapshot' ? event.items : event.changes
      for (const item of items) {
        expect('value' in item && item.value !== undefined).toBe(true)
        const value = Number(dec((item as { value: Uint8Array }).value))
        const before = latest.get(item.key) ?? -1
        expect(value, item.key).toBeGreaterThan(before)
        latest.set(item.key, value)
      }
    }
    return keys.every((key) => latest.get(key) === final.get(key))
  }, 'the watch to reach the final counts')
  w.stop()
}

describe("watchMemory: 'lean'", () => {
  const storeChanges = (events: StoreEvent<Uint8Array>[], p: string) =>
    events.flatMap((event) =>
      event.type === 'changes'
        ? event.changes.map(
            (c) =>
              `${c.op} ${c.key.slice(p.length)}${c.op === 'put' ? `=${dec(c.value)}` : ''} prev=${c.prev ? dec(c.prev) : '-'}`,
          )
        : [],
    )

  it('changes carry no prev (consumers get theirs from the orchestrator); a rewrite with the same value is a put', async () => {
    const p = fresh()
    const s = store({ watchMemory: 'lean' })
    await raw.set(`${p}a`, 'one')
    const w = collect(s, [p])
    const instance = sync(s)
    const recorder = recordConsumer(instance.register('c', { prefixes: [p], codec: text }))
    instance.start()
    await recorder.until((state) => state.get(`${p}a`) === 'one')
    await waitFor(() => w.snapshots().length === 1, 'the snapshot')
    await raw.set(`${p}a`, 'two')
    await recorder.until((state) => state.get(`${p}a`) === 'two')
    // Both watches have reported it: the rewrite comes after their reads, so it is a new write
    // (one during a read could be the same write's event, and is not reported).
    await waitFor(() => storeChanges(w.events, p).length === 1, 'the first change on the watch')
    await raw.set(`${p}a`, 'two')
    // Reported before the next write to the key: events for a key waiting together are one read.
    await waitFor(() => storeChanges(w.events, p).length === 2, 'the rewrite on the watch')
    await recorder.until(() => changes(recorder, p).length === 2)
    await raw.set(`${p}b`, 'x')
    await raw.del(`${p}a`)
    await recorder.until((state) => !state.has(`${p}a`))
    await waitFor(() => storeChanges(w.events, p).length === 4, 'four changes on the watch')
    expect(storeChanges(w.events, p)).toEqual([
      'put a=two prev=-',
      'put a=two prev=-',
      'put b=x prev=-',
      'delete a prev=-',
    ])
    expect(changes(recorder, p)).toEqual([
      'put a=two prev=one',
      'put a=two prev=two',
      'put b=x prev=-',
      'delete a prev=two',
    ])
    expect(recorder.violations).toEqual([])
    w.stop()
  })

  it('a revision from a lean watch fails a revision condition (nothing is written); one from get holds', async () => {
    const p = fresh()
    const key = `${p}k`
    await raw.set(key, 'v')
    const snapshotRevision = async (over: RedisStore) => {
      const event = await firstValueFrom(over.watch([p]))
      if (event.type !== 'snapshot') throw new Error('expected a snapshot first')
      return event.items.find((item) => item.key === key)!.revision
    }
    const put = (over: RedisStore, value: string, at: ReturnType<typeof revision>) =>
      lastValueFrom(
        over.txn([{ op: 'put', key, value: enc(value) }], { conditions: [{ key, revision: at }] }),
      )
    const lean = store({ watchMemory: 'lean' })
    expect((await put(lean, 'lean', await snapshotRevision(lean))).succeeded).toBe(false)
    expect(await raw.get(key)).toBe('v')
    const got = await lastValueFrom(lean.get(key))
    expect((await put(lean, 'from-get', got!.revision)).succeeded).toBe(true)
    expect(await raw.get(key)).toBe('from-get')
    // 'values' keeps the values: its snapshot revisions vouch for them.
    const values = store({ watchMemory: 'values' })
    expect((await put(values, 'values', await snapshotRevision(values))).succeeded).toBe(true)
    expect(await raw.get(key)).toBe('values')
  })

  for (const watchMemory of ['values', 'lean'] as const) {
    it(`a key written while the watch lists is reported once, in the snapshot or as a put (${watchMemory})`, async () => {
      const p = fresh()
      const before = Array.from({ length: 20_000 }, (_, i) => [`${p}old/${i}`, 'old'])
      await raw.mset(...before.flat())
      const s = store({ watchMemory, scanCount: 100 })
      const patterns = Number(await raw.call('PUBSUB', 'NUMPAT'))
      const w = collect(s, [p])
      const other = client(server.port)
      const fresh_ = Array.from({ length: 1000 }, (_, i) => `${p}new/${i}`)
      // Written one at a time from the moment the watch has subscribed, while it lists.
      await waitFor(
        async () => Number(await raw.call('PUBSUB', 'NUMPAT')) > patterns,
        'the watch to subscribe',
      )
      for (const key of fresh_) await other.set(key, 'new')
      const count = new Map<string, number>()
      await waitFor(() => {
        for (const event of w.events.splice(0)) {
          const items = event.type === 'snapshot' ? event.items : event.changes
          for (const item of items) count.set(item.key, (count.get(item.key) ?? 0) + 1)
        }
        return fresh_.every((key) => count.has(key))
      }, 'every new key on the watch')
      // One more write: once it is reported, so is every event before it (a duplicate too).
      await raw.set(`${p}marker`, 'm')
      await waitFor(() => {
        for (const event of w.events.splice(0)) {
          const items = event.type === 'snapshot' ? event.items : event.changes
          for (const item of items) count.set(item.key, (count.get(item.key) ?? 0) + 1)
        }
        return count.has(`${p}marker`)
      }, 'the marker')
      const twice = [...count].filter(([, n]) => n !== 1).map(([key]) => key)
      expect(twice).toEqual([])
      expect(count.size).toBe(before.length + fresh_.length + 1)
      w.stop()
      // Every SCAN of the other tests walks the whole keyspace: leave it as it was.
      await raw.unlink(...count.keys())
    })
  }
})

describe('faults', () => {
  it('the pub/sub connection killed during a stream of writes: every consumer ends with the store state', async () => {
    const p = fresh()
    const s = store()
    const writer = store()
    const statuses: StoreStatus['state'][] = []
    s.status$.subscribe((status) => statuses.push(status.state))
    const w = collect(s, [p])
    const instance = sync(s)
    const recorders = [
      recordConsumer(instance.register('all', { prefixes: [p], codec: text })),
      recordConsumer(instance.register('half', { prefixes: [`${p}1`, `${p}3`], codec: text }), {
        ackDelay: (event) => (event.kind === 'change' ? 2 : 0),
      }),
    ]
    instance.start()
    await firstValueFrom(instance.status$.pipe(filter((status) => status.state === 'in-sync')))
    // The collected watch is a second watch: a kill before its first snapshot would only delay it.
    await waitFor(() => w.snapshots().length === 1, 'the first snapshot')
    let writing = true
    const writes = (async () => {
      for (let i = 0; writing || i < 300; i++) {
        const key = `${p}${i % 40}`
        if (i % 9 === 8) await lastValueFrom(writer.delete(key))
        else await lastValueFrom(writer.put(key, enc(`v${i}`)))
        if (i % 4 === 0) await raw.set(`${p}${(i * 3) % 40}`, `raw${i}`)
      }
    })()
    for (let kill = 0; kill < 3; kill++) {
      const before = w.snapshots().length
      await waitFor(
        async () => Number(await redisCommand(server.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub')) > 0,
        'a pub/sub connection to kill',
      )
      await waitFor(() => w.snapshots().length > before, 'the watch to relist')
    }
    writing = false
    await writes
    for (const recorder of recorders) {
      const expected = (
        await Promise.all(
          recorder === recorders[0] ? [listed(s, p)] : [listed(s, `${p}1`), listed(s, `${p}3`)],
        )
      ).flat()
      await recorder.untilEquals(expected, 30_000)
      expect(recorder.violations).toEqual([])
    }
    const causes = w.snapshots().map((snapshot) => snapshot.type === 'snapshot' && snapshot.cause)
    expect(causes[0]).toBe('startup')
    expect(causes.length).toBeGreaterThanOrEqual(4)
    expect(new Set(causes.slice(1))).toEqual(new Set(['reconnect']))
    expect(statuses).toContain('degraded')
    expect(statuses.at(-1)).toBe('ready')
    w.stop()
  })

  it('a paused server degrades the status; after it resumes the watch relists', async () => {
    const own = await startRedis({ name: 'redis-pause' })
    servers.push(own)
    const p = fresh()
    const s = store({ heartbeatInterval: '300ms', commandTimeout: '500ms' }, own.port)
    const w = collect(s, [p])
    await waitFor(() => w.snapshots().length === 1, 'the snapshot')
    await firstValueFrom(s.status$.pipe(filter((status) => status.state === 'ready')))
    await own.pause()
    const degraded = await firstValueFrom(
      s.status$.pipe(
        filter((status) => status.state === 'degraded'),
        timeout(10_000),
      ),
    )
    expect(degraded.error?.code).toBe('unavailable')
    own.resume()
    await client(own.port).set(`${p}after`, 'resume')
    await waitFor(
      () =>
        w.snapshots().length >= 2 &&
        w.events.some((e) => e.type !== 'snapshot' || e.items.length > 0),
      'the relist after resuming',
    )
    await firstValueFrom(s.status$.pipe(filter((status) => status.state === 'ready')))
    expect(await lastValueFrom(s.ping())).toBeGreaterThanOrEqual(0)
    w.stop()
  })

  it('a wrong password is fatal: an AuthError, not endless retries', async () => {
    const port = await freePort()
    const own = await startRedis({
      port,
      name: 'redis-auth',
      extraArgs: ['--requirepass', 'right'],
      ready: async (signal) =>
        (await redisCommand({ port, signal, timeoutMs: 1_000 }, 'AUTH', 'right')) === 'OK',
    })
    servers.push(own)
    const wrong = store({ password: 'wrong' }, port)
    const watchError: unknown = await firstValueFrom(wrong.watch(['x/'])).catch((e: unknown) => e)
    expect(watchError).toBeInstanceOf(AuthError)
    const getError: unknown = await lastValueFrom(wrong.get('x')).catch((e: unknown) => e)
    expect(getError).toBeInstanceOf(AuthError)
    const right = store({ password: 'right' }, port)
    await lastValueFrom(right.put('x', enc('1')))
    expect(dec((await lastValueFrom(right.get('x')))!.value)).toBe('1')
  })
})

describe('broker', () => {
  it('lists 100k keys once each, sorted, and deletes them by prefix in batches', async () => {
    const p = fresh()
    const s = store()
    const pipeline = raw.pipeline()
    for (let i = 0; i < 100_000; i++) pipeline.set(`${p}${String(i).padStart(6, '0')}`, `v${i}`)
    await pipeline.exec()
    const started = performance.now()
    const items = await lastValueFrom(s.list(p))
    const listMs = performance.now() - started
    console.log(`[redis] list of 100000 keys: ${listMs.toFixed(0)} ms`)
    expect(items.length).toBe(100_000)
    expect(new Set(items.map((item) => item.key)).size).toBe(100_000)
    expect(items.map((item) => item.key)).toEqual(items.map((item) => item.key).sort())
    expect(dec(items[12_345]!.value)).toBe('v12345')
    const deleteStarted = performance.now()
    expect(await lastValueFrom(s.delete(p, { prefix: true }))).toEqual({ deleted: 100_000 })
    console.log(
      `[redis] prefix delete of 100000 keys: ${(performance.now() - deleteStarted).toFixed(0)} ms`,
    )
    expect(await lastValueFrom(s.listKeys(p))).toEqual([])
  })

  it('lists 10 MB of values', async () => {
    const p = fresh()
    const s = store()
    const big = 'x'.repeat(10_240)
    const pipeline = raw.pipeline()
    for (let i = 0; i < 1_024; i++) pipeline.set(`${p}${i}`, `${i}:${big}`)
    await pipeline.exec()
    const items = await lastValueFrom(s.list(p))
    expect(items.length).toBe(1_024)
    expect(items.reduce((sum, item) => sum + item.value.length, 0)).toBeGreaterThan(
      10 * 1024 * 1024,
    )
    const first = await firstValueFrom(s.watch([p]))
    expect(first.type === 'snapshot' && first.items.length).toBe(1_024)
  })

  it('treats glob characters in a prefix literally', async () => {
    const base = fresh()
    const p = `${base}a*[b]?\\`
    const s = store()
    await lastValueFrom(s.put(`${p}1`, enc('1')))
    // Would match the prefix read as a glob: a, anything, b, any one character, '*'.
    await raw.set(`${base}axxbZ*`, 'not under the prefix')
    expect(await lastValueFrom(s.listKeys(p))).toEqual([`${p}1`])
    const first = await firstValueFrom(s.watch([p]))
    expect(first.type === 'snapshot' && first.items.map((item) => item.key)).toEqual([`${p}1`])
  })

  it('runs conditional transactions atomically; revisions it cannot vouch for fail', async () => {
    const p = fresh()
    const s = store()
    const other = store()
    await lastValueFrom(s.put(`${p}x`, new Uint8Array([0, 255, 1])))
    const x = await lastValueFrom(s.get(`${p}x`))
    // Binary values compare exactly.
    const swapped = await lastValueFrom(
      s.txn([{ op: 'put', key: `${p}x`, value: enc('next') }], {
        conditions: [{ key: `${p}x`, value: new Uint8Array([0, 255, 1]) }],
      }),
    )
    expect(swapped.succeeded).toBe(true)
    expect(swapped.revision > x!.revision).toBe(true)
    // A revision from before the swap no longer holds.
    const stale = await lastValueFrom(
      s.txn([{ op: 'delete', key: `${p}x` }], {
        conditions: [{ key: `${p}x`, revision: x!.revision }],
      }),
    )
    expect(stale.succeeded).toBe(false)
    // A revision another store handed out means nothing here: the condition fails.
    const foreign = await lastValueFrom(other.get(`${p}x`))
    const unknown = await lastValueFrom(
      s.txn([{ op: 'delete', key: `${p}x` }], {
        conditions: [{ key: `${p}x`, revision: revision(foreign!.revision + 1000n) }],
      }),
    )
    expect(unknown.succeeded).toBe(false)
    // ZERO_REVISION means "absent", as in etcd.
    const created = await lastValueFrom(
      s.txn([{ op: 'put', key: `${p}y`, value: enc('y') }], {
        conditions: [{ key: `${p}y`, revision: ZERO_REVISION }],
      }),
    )
    expect(created.succeeded).toBe(true)
    const duplicate: unknown = await lastValueFrom(
      s.txn([
        { op: 'put', key: `${p}z`, value: enc('1') },
        { op: 'delete', key: p, prefix: true },
      ]),
    ).catch((e: unknown) => e)
    expect(duplicate).toBeInstanceOf(DatasyncError)
    expect((duplicate as DatasyncError).code).toBe('invalid-argument')
    // A prefix delete inside a transaction is atomic on one node.
    const cleared = await lastValueFrom(
      s.txn([
        { op: 'delete', key: p, prefix: true },
        { op: 'put', key: 'elsewhere/' + p, value: enc('e') },
      ]),
    )
    expect(cleared.succeeded).toBe(true)
    expect(await lastValueFrom(s.listKeys(p))).toEqual([])
  })

  it('delivers a transaction with a prefix delete as one change event', async () => {
    const p = fresh()
    const s = store()
    for (let i = 0; i < 5; i++) await lastValueFrom(s.put(`${p}old/${i}`, enc(`${i}`)))
    const w = collect(s, [p])
    await waitFor(() => w.snapshots().length === 1, 'the snapshot')
    await lastValueFrom(
      s.txn([
        { op: 'delete', key: `${p}old/`, prefix: true },
        { op: 'put', key: `${p}new`, value: enc('n') },
      ]),
    )
    await waitFor(() => w.events.length === 2, 'the change event')
    const event = w.events[1]
    expect(event?.type).toBe('changes')
    expect(
      event?.type === 'changes' &&
        event.changes.map((c) => `${c.op} ${c.key.slice(p.length)}`).sort(),
    ).toEqual([
      'delete old/0',
      'delete old/1',
      'delete old/2',
      'delete old/3',
      'delete old/4',
      'put new',
    ])
    w.stop()
  })
})

describe('batched puts', () => {
  it('puts made together each arrive as their own change with their value, in order; a get or txn made after them sees them', async () => {
    const p = fresh()
    const s = store()
    const w = collect(s, [p])
    await waitFor(() => w.snapshots().length === 1, 'the snapshot')
    // Made in one turn of the event loop: one script call. The same key twice keeps its order.
    const keys = Array.from({ length: 40 }, (_, i) => `${p}k${i % 30}`)
    const puts = keys.map((key, i) => lastValueFrom(s.put(key, enc(`v${i}`)), { defaultValue: 0 }))
    // Sent after the puts on the same connection, so it sees the last of them.
    const read = lastValueFrom(s.get(`${p}k0`))
    const txn = lastValueFrom(
      s.txn([{ op: 'put', key: `${p}t`, value: enc('t') }], {
        conditions: [{ key: `${p}k29`, value: enc('v29') }],
      }),
    )
    await Promise.all(puts)
    expect(dec((await read)!.value)).toBe('v30')
    expect((await txn).succeeded).toBe(true)
    await waitFor(() => w.events.length === 1 + keys.length + 1, 'every change')
    const seen = w.events.slice(1).map((event) => {
      if (event.type !== 'changes') throw new Error('expected changes')
      expect(event.changes).toHaveLength(1)
      const change = event.changes[0]!
      return `${change.key.slice(p.length)}=${change.op === 'put' ? dec(change.value) : '-'}`
    })
    expect(seen).toEqual([...keys.map((key, i) => `${key.slice(p.length)}=v${i}`), 't=t'])
    expect(await raw.get(`${p}k0`)).toBe('v30')
    w.stop()
  })
})

describe('lifecycle', () => {
  it('connects nothing until used, and close() ends watches, operations and connections', async () => {
    const name = `lifecycle-${process.pid}`
    const s = store({ connectionName: name })
    const count = async () =>
      String(await redisCommand(server.port, 'CLIENT', 'LIST'))
        .split('\n')
        .filter((line) => line.includes(` name=${name}`)).length
    expect(await count()).toBe(0)
    const watched = s.watch(['x/'])
    expect(await count()).toBe(0)
    const statuses: StoreStatus[] = []
    s.status$.subscribe((status) => statuses.push(status))
    const seen: StoreEvent<Uint8Array>[] = []
    const ended = new Promise<void>((resolve, reject) => {
      watched.subscribe({
        next: (event) => seen.push(event),
        error: reject,
        complete: () => {
          resolve()
        },
      })
    })
    await waitFor(async () => (await count()) === 2, 'the watch connections')
    await waitFor(() => seen.length > 0, 'the snapshot')
    await lastValueFrom(s.put('x/1', enc('1')))
    await s.close()
    await s.close()
    await ended
    await waitFor(async () => (await count()) === 0, 'every connection to close')
    expect(statuses.at(-1)?.state).toBe('closed')
    await expect(lastValueFrom(s.get('x/1'))).rejects.toBeInstanceOf(ClosedError)
    await expect(firstValueFrom(s.watch(['x/']))).rejects.toBeInstanceOf(ClosedError)
    expect(await lastValueFrom(s.status$.pipe(take(5), toArray()))).toEqual([{ state: 'closed' }])
  })
})
