/**
 * Issue 18, etcd writes: puts that wait together go as one Txn (src/backends/etcd/writer.ts).
 * On a real member: every put lands with its value, a watch sees each change once, in the order
 * the puts were made, with its previous value; a key written twice keeps its order; a put too
 * large for the member fails by itself (once, invalid-argument naming its key) while the others
 * land; TTL puts and a lease lost amid a batch; a queued put unsubscribed or cut by close().
 */
import { Observable, type Subscription } from 'rxjs'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { createEtcdStore, type EtcdStore } from '../../src/backends/etcd/index.js'
import { string } from '../../src/core/codec.js'
import { ClosedError, DatasyncError } from '../../src/core/errors.js'
import type { PutChange, StoreEvent } from '../../src/core/events.js'
import { pollUntil, startEtcd, useServer } from '../servers/index.js'
import { done, etcdMetric, rawClient } from '../support/etcd.js'

const text = string()
const enc = (value: string) => text.encode(value)
const dec = (value: Uint8Array | undefined) =>
  value === undefined ? undefined : text.decode(value)
const KiB = 1024

type Outcome = { readonly ok: true } | { readonly ok: false; readonly error: unknown }

/** Subscribes now (so that writes made together wait together) and resolves with the outcome. */
function outcome(write: Observable<unknown>): Promise<Outcome> {
  return done(write).then(
    (): Outcome => ({ ok: true }),
    (error: unknown): Outcome => ({ ok: false, error }),
  )
}

/** The put changes a watch of `prefix` delivers after its snapshot, in order. */
function recordPuts(store: EtcdStore, prefix: string) {
  const changes: PutChange<Uint8Array>[] = []
  let snapshot = false
  const subscription: Subscription = store
    .watch([prefix])
    .subscribe((event: StoreEvent<Uint8Array>) => {
      if (event.type === 'snapshot') snapshot = true
      if (event.type !== 'changes') return
      for (const change of event.changes) if (change.op === 'put') changes.push(change)
    })
  return {
    changes,
    started: () => pollUntil(() => snapshot, { description: `the snapshot of ${prefix}` }),
    reach: (count: number) =>
      pollUntil(() => changes.length >= count, {
        description: `${count} put changes under ${prefix} (got ${changes.length})`,
      }),
    stop: () => {
      subscription.unsubscribe()
    },
  }
}

let counter = 0
const fresh = (name: string) => `writes-${process.pid}-${++counter}-${name}/`

describe('etcd put batching', () => {
  const etcd = useServer(() => startEtcd({ name: 'etcd-writes' }))
  // A member refusing requests over 1 MiB, below the store's default check (1.5 MiB).
  const small = useServer(() =>
    startEtcd({ name: 'etcd-writes-1mib', extraArgs: ['--max-request-bytes', String(1024 * KiB)] }),
  )
  const stores: EtcdStore[] = []
  const open = (url: string, options: Parameters<typeof createEtcdStore>[0] = {}) => {
    const store = createEtcdStore({ endpoints: [url], ...options })
    stores.push(store)
    return store
  }
  const raw = () => rawClient([etcd().clientUrl])
  const writeCalls = (url: string) =>
    etcdMetric(
      url,
      'grpc_server_handled_total',
      (labels) => labels.includes('grpc_method="Put"') || labels.includes('grpc_method="Txn"'),
    )
  const refusals = (url: string) =>
    etcdMetric(url, 'grpc_server_handled_total', (labels) =>
      labels.includes('grpc_code="InvalidArgument"'),
    )

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()))
  })
  afterAll(async () => {
    await Promise.all(stores.map((store) => store.close()))
  })

  it('500 puts made at once land in 8 calls; a watch sees each once, in order, with its prev', async () => {
    const store = open(etcd().clientUrl)
    const p = fresh('many')
    const keys = Array.from({ length: 500 }, (_, i) => `${p}${String(i).padStart(3, '0')}`)
    await Promise.all(keys.map((key) => done(store.put(key, enc('old')))))
    const watch = recordPuts(store, p)
    try {
      await watch.started()
      const before = await writeCalls(etcd().clientUrl)
      // Made in reverse key order: the watch must follow the order of the puts, not the keys.
      const order = [...keys].reverse()
      const results = await Promise.all(
        order.map((key) => outcome(store.put(key, enc(`v-${key}`)))),
      )
      expect(results.filter((result) => !result.ok)).toEqual([])
      // maxWritesInFlight (64) puts per Txn: 500 puts are 8 calls, not 500.
      expect((await writeCalls(etcd().clientUrl)) - before).toBe(8)
      await watch.reach(500)
      expect(watch.changes.map((change) => change.key)).toEqual(order)
      expect(watch.changes.map((change) => dec(change.value))).toEqual(order.map((k) => `v-${k}`))
      expect(watch.changes.every((change) => dec(change.prev) === 'old')).toBe(true)
      expect(new Set(watch.changes.map((change) => change.revision)).size).toBe(8)
      const listed = await done(store.list(p))
      expect(listed?.map((kv) => [kv.key, dec(kv.value)])).toEqual(keys.map((k) => [k, `v-${k}`]))
    } finally {
      watch.stop()
    }
  })

  it('puts to one key made together keep their order: the last wins, the watch sees every one', async () => {
    const store = open(etcd().clientUrl)
    const p = fresh('same')
    const key = `${p}k`
    const watch = recordPuts(store, p)
    try {
      await watch.started()
      const writes: Promise<Outcome>[] = []
      for (let i = 0; i < 50; i++) {
        writes.push(outcome(store.put(key, enc(`v${i}`))))
        writes.push(outcome(store.put(`${p}other-${i}`, enc(`o${i}`))))
      }
      expect((await Promise.all(writes)).filter((result) => !result.ok)).toEqual([])
      await watch.reach(100)
      const ofKey = watch.changes.filter((change) => change.key === key)
      expect(ofKey.map((change) => dec(change.value))).toEqual(
        Array.from({ length: 50 }, (_, i) => `v${i}`),
      )
      expect(ofKey.map((change) => dec(change.prev))).toEqual([
        undefined,
        ...Array.from({ length: 49 }, (_, i) => `v${i}`),
      ])
      // Never twice in one Txn (etcd refuses a txn that writes a key twice): 50 revisions.
      expect(new Set(ofKey.map((change) => change.revision)).size).toBe(50)
      expect(dec((await done(store.get(key)))?.value)).toBe('v49')
    } finally {
      watch.stop()
    }
  })

  it('a put too large for the member fails alone, once, naming its key; the others land', async () => {
    const url = small().clientUrl
    const store = open(url)
    const p = fresh('large')
    await done(store.put(`${p}warm`, enc('x')))
    const before = await refusals(url)
    const keys = Array.from({ length: 20 }, (_, i) => `${p}small-${i}`)
    const big = `${p}big`
    const writes = [
      ...keys.slice(0, 10).map((key) => outcome(store.put(key, enc(key)))),
      outcome(store.put(big, new Uint8Array(1.2 * 1024 * KiB))),
      ...keys.slice(10).map((key) => outcome(store.put(key, enc(key)))),
    ]
    const results = await Promise.all(writes)
    const failed = results[10]
    expect(failed?.ok).toBe(false)
    const error = failed?.ok === false ? failed.error : undefined
    expect(error).toBeInstanceOf(DatasyncError)
    expect(error).toMatchObject({ code: 'invalid-argument', retryable: false })
    expect((error as Error).message).toContain(JSON.stringify(big))
    expect((error as Error).message).toMatch(/--max-request-bytes/)
    expect(results.filter((result) => !result.ok)).toHaveLength(1)
    // Sent once: a batch carrying it would have been refused first, then the put alone.
    expect(await refusals(url)).toBe(before + 1)
    const listed = await done(store.list(p))
    expect(listed?.map((kv) => kv.key).sort()).toEqual([...keys, `${p}warm`].sort())
  })

  it('a batch over the member limit (each put under it) is sent again put by put: all land', async () => {
    const url = small().clientUrl
    const store = open(url)
    const p = fresh('sum')
    await done(store.put(`${p}warm`, enc('x')))
    const before = await refusals(url)
    // 20 puts of 60 KiB: 1.2 MiB together, under the store's 1.5 MiB, over the member's 1 MiB.
    const keys = Array.from({ length: 20 }, (_, i) => `${p}${String(i).padStart(2, '0')}`)
    const results = await Promise.all(
      keys.map((key) => outcome(store.put(key, new Uint8Array(60 * KiB).fill(7)))),
    )
    expect(results.filter((result) => !result.ok)).toEqual([])
    expect(await refusals(url)).toBe(before + 1)
    const listed = await done(store.listKeys(p))
    expect(listed).toEqual([`${p}warm`, ...keys].sort())
  })

  it('a TTL put amid plain puts keeps its place and its lease, and expires', async () => {
    const store = open(etcd().clientUrl, { leaseWindow: '0s' })
    const p = fresh('ttl')
    const watch = recordPuts(store, p)
    try {
      await watch.started()
      const results = await Promise.all([
        outcome(store.put(`${p}a`, enc('a'))),
        outcome(store.put(`${p}b`, enc('b'), { ttl: '1s' })),
        outcome(store.put(`${p}c`, enc('c'))),
      ])
      expect(results.filter((result) => !result.ok)).toEqual([])
      await watch.reach(3)
      expect(watch.changes.map((change) => change.key)).toEqual([`${p}a`, `${p}b`, `${p}c`])
      const client = raw()
      try {
        const leased = await client.kv.range({ key: Buffer.from(`${p}b`) })
        expect(leased.kvs[0]?.lease).not.toBe('0')
        const plain = await client.kv.range({ key: Buffer.from(`${p}a`) })
        expect(plain.kvs[0]?.lease).toBe('0')
      } finally {
        client.close()
      }
      await pollUntil(async () => (await done(store.get(`${p}b`))) === undefined, {
        description: `${p}b to expire with its lease`,
        timeoutMs: 10_000,
      })
      expect(dec((await done(store.get(`${p}a`)))?.value)).toBe('a')
    } finally {
      watch.stop()
    }
  })

  it('a lease lost amid a batch: the plain puts land, the TTL put lands with a new lease', async () => {
    const store = open(etcd().clientUrl, { leaseWindow: '30s' })
    const p = fresh('lost')
    await done(store.put(`${p}first`, enc('1'), { ttl: '20s' }))
    const client = raw()
    try {
      const first = await client.kv.range({ key: Buffer.from(`${p}first`) })
      const lease = first.kvs[0]?.lease
      expect(lease).toBeDefined()
      await client.leaseClient.leaseRevoke({ ID: lease ?? '0' })
      // The store still shares that lease (within its window): the TTL put rides on a lost lease
      // in one Txn with two plain puts.
      const results = await Promise.all([
        outcome(store.put(`${p}x`, enc('x'))),
        outcome(store.put(`${p}t`, enc('t'), { ttl: '20s' })),
        outcome(store.put(`${p}y`, enc('y'))),
      ])
      expect(results.filter((result) => !result.ok)).toEqual([])
      const t = await client.kv.range({ key: Buffer.from(`${p}t`) })
      expect(t.kvs[0]?.lease).not.toBe('0')
      expect(t.kvs[0]?.lease).not.toBe(lease)
      expect(await client.get(`${p}x`).string()).toBe('x')
      expect(await client.get(`${p}y`).string()).toBe('y')
    } finally {
      client.close()
    }
  })

  it('a queued put unsubscribed before it leaves is never written; the rest are', async () => {
    const store = open(etcd().clientUrl)
    const p = fresh('unsub')
    const a = outcome(store.put(`${p}a`, enc('a')))
    const dropped = store.put(`${p}b`, enc('b')).subscribe()
    const c = outcome(store.put(`${p}c`, enc('c')))
    dropped.unsubscribe()
    expect(await Promise.all([a, c])).toEqual([{ ok: true }, { ok: true }])
    expect(await done(store.listKeys(p))).toEqual([`${p}a`, `${p}c`])
  })

  it('close() with puts queued fails each with ClosedError and sends none of them', async () => {
    const store = open(etcd().clientUrl)
    const p = fresh('close')
    await done(store.get(`${p}warm`))
    const writes = Array.from({ length: 100 }, (_, i) => outcome(store.put(`${p}${i}`, enc('v'))))
    await store.close()
    const results = await Promise.all(writes)
    expect(results.every((result) => !result.ok && result.error instanceof ClosedError)).toBe(true)
    const client = raw()
    try {
      expect(await client.getAll().prefix(p).keys()).toEqual([])
    } finally {
      client.close()
    }
  })
})

describe('etcd put batching through a fault', () => {
  const etcd = useServer(() => startEtcd({ name: 'etcd-writes-pause' }))
  let store: EtcdStore | undefined
  afterEach(async () => {
    if (etcd().isPaused) etcd().resume()
    await store?.close()
  })

  it('etcd stopped with batches queued: every put fails retryable; after it, writes land', async () => {
    const paused = createEtcdStore({ endpoints: [etcd().clientUrl], operationTimeout: '1s' })
    store = paused
    const p = fresh('paused')
    await done(paused.put(`${p}warm`, enc('x')))
    await etcd().pause()
    const results = await Promise.all(
      Array.from({ length: 150 }, (_, i) => outcome(paused.put(`${p}${i}`, enc(`v${i}`)))),
    )
    etcd().resume()
    for (const result of results) {
      expect(result.ok).toBe(false)
      const error = result.ok ? undefined : result.error
      expect(error).toBeInstanceOf(DatasyncError)
      expect((error as DatasyncError).retryable).toBe(true)
    }
    // The client may skip the member for a moment after its faults: the put is tried until then.
    const after = paused
    await pollUntil(async () => (await outcome(after.put(`${p}after`, enc('after')))).ok, {
      description: 'a put after etcd came back',
    })
    expect(dec((await done(after.get(`${p}after`)))?.value)).toBe('after')
  })
})
