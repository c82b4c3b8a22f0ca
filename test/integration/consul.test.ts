/**
 * The Consul store against a real dev agent: what the conformance suite does not cover — Consul's
 * own rules (keys its HTTP API cannot address, TTLs through sessions, the transaction operation
 * limit, value conditions), the watch's merging, prefixes with a common root, and the status.
 */
import { firstValueFrom, lastValueFrom, take, timeout, toArray } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createConsulStore } from '../../src/backends/consul/index.js'
import {
  CapabilityError,
  DatasyncError,
  createDatasync,
  string,
  type KvStore,
  type StoreEvent,
  ZERO_REVISION,
} from '../../src/index.js'
import { recordConsumer } from '../../src/testing/index.js'
import { CONSUL_BUILD_TIMEOUT_MS, ensureConsul } from '../servers/consul-install.js'
import { consulKvGet, consulKvPut, startConsul, type ConsulAgent } from '../servers/consul.js'
import { httpRequest, pollUntil } from '../servers/index.js'
import { startTcpProxy } from '../support/tcp-proxy.js'

const text = string()
const enc = (value: string) => text.encode(value)
const dec = (raw: Uint8Array) => text.decode(raw)

let agent: ConsulAgent
let store: KvStore
let counter = 0
const fresh = () => `it-${process.pid}-${++counter}/`

beforeAll(async () => {
  await ensureConsul()
  agent = await startConsul()
  store = createConsulStore({ address: agent.address, waitTime: '5s', statusInterval: '1s' })
}, CONSUL_BUILD_TIMEOUT_MS)

afterAll(async () => {
  await store.close()
  await agent.cleanup()
})

const put = (key: string, value: string) =>
  lastValueFrom(store.put(key, enc(value)), { defaultValue: undefined })

/** The sessions the agent's node holds now. */
async function sessionCount(): Promise<number> {
  const res = await httpRequest(`${agent.httpUrl}/v1/session/list`)
  return (JSON.parse(res.body) as unknown[]).length
}

describe('keys', () => {
  it('refuses keys and prefixes that Consul cannot address in a URL, naming the problem', async () => {
    for (const key of ['/lead', 'a//b', 'a/./b', 'a/../b', '']) {
      await expect(lastValueFrom(store.get(key))).rejects.toThrow(TypeError)
    }
    await expect(lastValueFrom(store.put('/x', enc('1')))).rejects.toThrow(/starts with '\/'/)
    await expect(lastValueFrom(store.list('a//'))).rejects.toThrow(/empty segment/)
    // A trailing slash is a key of its own (a "folder") and works.
    const p = fresh()
    await put(`${p}dir/`, 'folder')
    expect(dec((await lastValueFrom(store.get(`${p}dir/`)))!.value)).toBe('folder')
  })

  it('keeps any bytes, and keys with spaces, unicode and URL characters', async () => {
    const p = fresh()
    const key = `${p}sp ace/é?#%&=+`
    const bytes = new Uint8Array([0, 255, 1, 254, 10, 13])
    await lastValueFrom(store.put(key, bytes), { defaultValue: undefined })
    await lastValueFrom(store.put(`${p}empty`, new Uint8Array(0)), { defaultValue: undefined })
    const got = await lastValueFrom(store.get(key))
    expect(got?.value).toEqual(bytes)
    expect(got?.value.constructor).toBe(Uint8Array)
    expect((await lastValueFrom(store.get(`${p}empty`)))?.value).toEqual(new Uint8Array(0))
    expect(await lastValueFrom(store.listKeys(p))).toEqual([`${p}empty`, key])
  })

  it('refuses a value larger than the agent allows with a clear error', async () => {
    const error = await lastValueFrom(store.put(`${fresh()}big`, new Uint8Array(600 * 1024))).catch(
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(DatasyncError)
    expect((error as DatasyncError).code).toBe('invalid-argument')
    expect((error as Error).message).toMatch(/too large/)
  })

  it("deletes every key with the prefix '', counting them", async () => {
    // Its own agent: everything goes.
    const other = await startConsul({ node: 'wipe' })
    const wipe = createConsulStore({ address: other.address })
    try {
      for (const key of ['a', 'b/c', 'd/e/f']) {
        await lastValueFrom(wipe.put(key, enc(key)), { defaultValue: undefined })
      }
      expect(await lastValueFrom(wipe.delete('', { prefix: true }))).toEqual({ deleted: 3 })
      expect(await lastValueFrom(wipe.listKeys(''))).toEqual([])
    } finally {
      await wipe.close()
      await other.cleanup()
    }
  })
})

describe('requests in flight', () => {
  it('a burst of writes waits for free connections instead of opening one each', async () => {
    const proxy = await startTcpProxy(agent.ports.http)
    const bounded = createConsulStore({ address: proxy.address, maxConcurrentRequests: 4 })
    const p = fresh()
    try {
      await Promise.all(
        Array.from({ length: 300 }, (_, i) =>
          lastValueFrom(bounded.put(`${p}${i}`, enc(String(i))), { defaultValue: undefined }),
        ),
      )
      expect(await lastValueFrom(store.listKeys(p))).toHaveLength(300)
      expect(proxy.peakConnections).toBeLessThanOrEqual(4)
    } finally {
      await bounded.close()
      await proxy.close()
    }
  })
})

describe('TTL through sessions', () => {
  it("refuses a TTL below the servers' session_ttl_min (10s by default) or above 24h", async () => {
    const short = await lastValueFrom(store.put(`${fresh()}t`, enc('x'), { ttl: '1s' })).catch(
      (e: unknown) => e,
    )
    expect(short).toBeInstanceOf(CapabilityError)
    expect((short as Error).message).toMatch(/at least|from 10s/)
    const long = await lastValueFrom(store.put(`${fresh()}t`, enc('x'), { ttl: '25h' })).catch(
      (e: unknown) => e,
    )
    expect(long).toBeInstanceOf(CapabilityError)
  })

  it('deletes a key no sooner than its TTL (Consul: at about twice it); consumers see the delete with its last value; a plain put clears a TTL', async () => {
    const p = fresh()
    const sync = createDatasync(store, { ackTimeout: '10s' })
    const recorder = recordConsumer(sync.register('ttl', { prefixes: [p], codec: text }))
    sync.start()
    try {
      await recorder.until((state) => state.size === 0)
      const started = Date.now()
      await lastValueFrom(store.put(`${p}expiring`, enc('short'), { ttl: '10s' }), {
        defaultValue: undefined,
      })
      // Put with a TTL, then put again without: the second put must make it stay.
      await lastValueFrom(store.put(`${p}kept`, enc('first'), { ttl: '10s' }), {
        defaultValue: undefined,
      })
      await put(`${p}kept`, 'second')
      // A TTL put over a TTL put: the newer session holds it.
      await lastValueFrom(store.put(`${p}renewed`, enc('a'), { ttl: '10s' }), {
        defaultValue: undefined,
      })
      await lastValueFrom(store.put(`${p}renewed`, enc('b'), { ttl: '30s' }), {
        defaultValue: undefined,
      })
      await recorder.until((state) => state.get(`${p}expiring`) === 'short', '10s')
      await recorder.until((state) => !state.has(`${p}expiring`), '40s')
      const elapsed = Date.now() - started
      console.log(`[consul ttl] a 10s TTL key was deleted after ${elapsed} ms`)
      expect(elapsed).toBeGreaterThanOrEqual(9_000)
      const deletes = recorder.events.flatMap((event) =>
        event.kind === 'change' ? event.changes.filter((c) => c.op === 'delete') : [],
      )
      expect(deletes).toEqual([
        expect.objectContaining({ op: 'delete', key: `${p}expiring`, prev: 'short' }),
      ])
      // Every session of the 10s TTLs has ended by now (the 30s one may still run).
      await pollUntil(async () => (await sessionCount()) <= 1, { timeoutMs: 30_000 })
      expect(await consulKvGet(agent.httpUrl, `${p}kept`)).toBe('second')
      expect(await consulKvGet(agent.httpUrl, `${p}renewed`)).toBe('b')
      expect(recorder.violations).toEqual([])
      await recorder.untilEquals(
        (await lastValueFrom(store.list(p))).map((item) => ({ ...item, value: dec(item.value) })),
      )
    } finally {
      sync.close()
    }
  })

  it('leaves no session behind when a TTL put does not commit', async () => {
    const p = fresh()
    await put(`${p}taken`, 'x')
    const before = await sessionCount()
    const result = await lastValueFrom(
      store.txn([{ op: 'put', key: `${p}taken`, value: enc('y'), ttl: '10s' }], {
        conditions: [{ key: `${p}taken`, exists: false }],
      }),
    )
    expect(result.succeeded).toBe(false)
    expect(await sessionCount()).toBe(before)
  })
})

describe('transactions', () => {
  it('refuses more operations than Consul allows with a clear error and writes nothing', async () => {
    const p = fresh()
    const ops = Array.from({ length: 70 }, (_, i) => ({
      op: 'put' as const,
      key: `${p}k${i}`,
      value: enc(String(i)),
    }))
    const error = await lastValueFrom(store.txn(ops)).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(DatasyncError)
    expect((error as DatasyncError).code).toBe('invalid-argument')
    expect((error as Error).message).toMatch(/140 Consul operations but the agent allows 128/)
    expect(await lastValueFrom(store.listKeys(p))).toEqual([])
    // 64 puts fit (128 operations) and commit together.
    const result = await lastValueFrom(store.txn(ops.slice(0, 64)))
    expect(result.succeeded).toBe(true)
    expect(await lastValueFrom(store.listKeys(p))).toHaveLength(64)
  })

  it('checks exists, revision and value conditions; the revision is the commit index', async () => {
    const p = fresh()
    await put(`${p}a`, '1')
    const a = await lastValueFrom(store.get(`${p}a`))
    const missingRevision = await lastValueFrom(
      store.txn([{ op: 'put', key: `${p}b`, value: enc('2') }], {
        conditions: [
          { key: `${p}a`, exists: true },
          { key: `${p}a`, revision: a!.revision },
          { key: `${p}b`, revision: ZERO_REVISION },
          { key: `${p}a`, value: enc('1') },
        ],
      }),
    )
    expect(missingRevision.succeeded).toBe(true)
    const b = await lastValueFrom(store.get(`${p}b`))
    expect(b?.revision).toBe(missingRevision.revision)
    expect(missingRevision.revision > a!.revision).toBe(true)
    const stale = await lastValueFrom(
      store.txn([{ op: 'delete', key: `${p}a` }], {
        conditions: [{ key: `${p}b`, revision: a!.revision }],
      }),
    )
    expect(stale).toEqual({ succeeded: false, revision: expect.any(BigInt) as bigint })
    expect(await lastValueFrom(store.listKeys(p))).toEqual([`${p}a`, `${p}b`])
    const wrongValue = await lastValueFrom(
      store.txn([{ op: 'delete', key: `${p}a` }], {
        conditions: [{ key: `${p}a`, value: enc('2') }],
      }),
    )
    expect(wrongValue.succeeded).toBe(false)
    const absent = await lastValueFrom(
      store.txn([{ op: 'delete', key: `${p}a` }], {
        conditions: [{ key: `${p}zz`, exists: true }],
      }),
    )
    expect(absent.succeeded).toBe(false)
  })

  it('a value condition holds against concurrent writers: exactly one compare-and-swap wins each round', async () => {
    const p = fresh()
    await put(`${p}counter`, '0')
    const increment = async () => {
      for (;;) {
        const current = await lastValueFrom(store.get(`${p}counter`))
        const value = dec(current!.value)
        const result = await lastValueFrom(
          store.txn([{ op: 'put', key: `${p}counter`, value: enc(String(Number(value) + 1)) }], {
            conditions: [{ key: `${p}counter`, value: enc(value) }],
          }),
        )
        if (result.succeeded) return
      }
    }
    await Promise.all(Array.from({ length: 20 }, increment))
    expect(await consulKvGet(agent.httpUrl, `${p}counter`)).toBe('20')
  })

  it('refuses a key written twice, as etcd does', async () => {
    const p = fresh()
    const error = await lastValueFrom(
      store.txn([
        { op: 'put', key: `${p}x`, value: enc('1') },
        { op: 'delete', key: p, prefix: true },
      ]),
    ).catch((e: unknown) => e)
    expect((error as DatasyncError).code).toBe('invalid-argument')
  })
})

describe('watch', () => {
  it('watches prefixes through their common root, filtering out the rest, and keeps a cross-prefix transaction one event', async () => {
    const p = fresh()
    const events: StoreEvent<Uint8Array>[] = []
    const watching = store
      .watch([`${p}x/`, `${p}y/`, `${p}x/deeper/`])
      .subscribe((event) => events.push(event))
    try {
      await pollUntil(() => events.length > 0)
      await put(`${p}z/outside`, 'no')
      await lastValueFrom(
        store.txn([
          { op: 'put', key: `${p}x/1`, value: enc('x') },
          { op: 'put', key: `${p}y/1`, value: enc('y') },
          { op: 'put', key: `${p}z/2`, value: enc('no') },
        ]),
      )
      await pollUntil(() => events.some((e) => e.type === 'changes'))
      const changes = events.filter((e) => e.type === 'changes')
      expect(changes).toHaveLength(1)
      expect(changes[0]!.type === 'changes' && changes[0]!.changes.map((c) => c.key)).toEqual([
        `${p}x/1`,
        `${p}y/1`,
      ])
    } finally {
      watching.unsubscribe()
    }
  })

  it("gives each change the key's ModifyIndex and each delete the listing index, carrying prev", async () => {
    const p = fresh()
    await put(`${p}a`, '1')
    const events: StoreEvent<Uint8Array>[] = []
    const watching = store.watch([p]).subscribe((event) => events.push(event))
    try {
      await pollUntil(() => events.length === 1)
      await consulKvPut(agent.httpUrl, `${p}a`, '2')
      await pollUntil(() => events.length === 2)
      const afterPut = await lastValueFrom(store.get(`${p}a`))
      await lastValueFrom(store.delete(`${p}a`))
      await pollUntil(() => events.length === 3)
      const [snapshot, changed, deleted] = events
      expect(snapshot?.type).toBe('snapshot')
      expect(changed).toMatchObject({
        type: 'changes',
        changes: [{ op: 'put', key: `${p}a`, revision: afterPut!.revision }],
      })
      expect(changed?.type === 'changes' && dec(changed.changes[0]!.prev!)).toBe('1')
      expect(deleted?.type === 'changes' && deleted.changes[0]).toMatchObject({
        op: 'delete',
        key: `${p}a`,
        revision: deleted!.revision,
      })
      expect(deleted?.type === 'changes' && dec(deleted.changes[0]!.prev!)).toBe('2')
      expect(deleted!.revision > changed!.revision).toBe(true)
    } finally {
      watching.unsubscribe()
    }
  })

  it('a watch of no prefixes is an empty snapshot and nothing more, asking nothing of the agent', async () => {
    const proxy = await startTcpProxy(agent.ports.http)
    const own = createConsulStore({ address: proxy.address })
    try {
      const first = await firstValueFrom(own.watch([]).pipe(timeout(5_000)))
      expect(first).toMatchObject({ type: 'snapshot', items: [], cause: 'startup' })
      expect(proxy.connections).toBe(0)
    } finally {
      await own.close()
      await proxy.close()
    }
  })

  it('status$ checks the agent: connecting, then ready', async () => {
    const own = createConsulStore({ address: agent.address, statusInterval: '1s' })
    try {
      const states = await firstValueFrom(own.status$.pipe(take(2), toArray(), timeout(10_000)))
      expect(states.map((s) => s.state)).toEqual(['connecting', 'ready'])
    } finally {
      await own.close()
    }
    expect(await firstValueFrom(own.status$)).toEqual({ state: 'closed' })
    await expect(lastValueFrom(own.get('x'))).rejects.toThrow(/closed/)
  })

  it('is cold: nothing reaches the agent before subscribing, and unsubscribing aborts the blocking query', async () => {
    const proxy = await startTcpProxy(agent.ports.http)
    const lazy = createConsulStore({ address: proxy.address, waitTime: '30s' })
    try {
      const watch = lazy.watch(['a/'])
      lazy.get('a')
      lazy.txn([{ op: 'delete', key: 'a' }])
      expect(proxy.connections).toBe(0)
      const watching = watch.subscribe()
      await pollUntil(() => proxy.blockingQueries === 1)
      watching.unsubscribe()
      await pollUntil(() => proxy.blockingQueries === 0)
      expect(proxy.blockingQueries).toBe(0)
    } finally {
      await lazy.close()
      await proxy.close()
    }
  })
})
