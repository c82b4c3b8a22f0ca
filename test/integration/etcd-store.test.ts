/**
 * The etcd store against one real member: the broker (get, list, put with TTL and session
 * leases, delete by prefix, conditional transactions, compaction), paged listings at one
 * revision across gRPC's 4 MiB reply limit, a large resync, a burst of writes that stays within
 * the in-flight bound, and the watch over several prefixes.
 */
import { filter, firstValueFrom, from, lastValueFrom, map, range, timeout, toArray } from 'rxjs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createEtcdStore, type EtcdStore } from '../../src/backends/etcd/index.js'
import { string } from '../../src/core/codec.js'
import { DatasyncError } from '../../src/core/errors.js'
import type { ChangesEvent, SnapshotEvent, StoreEvent } from '../../src/core/events.js'
import { revision } from '../../src/core/revision.js'
import { createDatasync } from '../../src/sync/datasync.js'
import { publishTo, type Publication } from '../../src/sync/publish.js'
import { recordConsumer } from '../../src/testing/recorder.js'
import { pollUntil, startEtcd, type EtcdServer } from '../servers/index.js'
import {
  currentRevision,
  done,
  etcdMetric,
  passThrough,
  rangeCalls,
  rawClient,
  statusReaches,
  watcherCount,
  watchersReach,
} from '../support/etcd.js'
import { startTcpProxy } from '../support/tcp-proxy.js'

const text = string()
const enc = (value: string) => text.encode(value)
const dec = (value: Uint8Array) => text.decode(value)

let etcd: EtcdServer | undefined
const stores: EtcdStore[] = []

function server(): EtcdServer {
  if (etcd === undefined) throw new Error('etcd did not start')
  return etcd
}

function open(options: Parameters<typeof createEtcdStore>[0] = {}): EtcdStore {
  const store = createEtcdStore({ endpoints: server().endpoints, ...options })
  stores.push(store)
  return store
}

let prefixCounter = 0
const fresh = (name: string) => `it-${process.pid}-${++prefixCounter}-${name}/`

beforeAll(async () => {
  etcd = await startEtcd()
})

afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()))
})

afterAll(async () => {
  await etcd?.cleanup()
})

describe('broker', () => {
  it('puts, gets, lists, lists keys and deletes by key and by prefix, counting', async () => {
    const store = open()
    const p = fresh('broker')
    expect(store.capabilities).toEqual({
      write: true,
      txn: true,
      ttl: true,
      nativePrev: true,
      resumable: true,
      atomicPrefixDelete: true,
    })
    for (const key of ['a', 'b/1', 'b/2', 'b/3']) await done(store.put(p + key, enc(key)))
    const got = await done(store.get(p + 'b/2'))
    expect(got && dec(got.value)).toBe('b/2')
    expect(typeof got?.revision).toBe('bigint')
    expect(await done(store.get(p + 'missing'))).toBeUndefined()
    expect((await done(store.list(p + 'b/')))?.map((item) => [item.key, dec(item.value)])).toEqual([
      [p + 'b/1', 'b/1'],
      [p + 'b/2', 'b/2'],
      [p + 'b/3', 'b/3'],
    ])
    expect(await done(store.listKeys(p))).toEqual([p + 'a', p + 'b/1', p + 'b/2', p + 'b/3'])
    expect(await done(store.delete(p + 'a'))).toEqual({ deleted: 1 })
    expect(await done(store.delete(p + 'a'))).toEqual({ deleted: 0 })
    expect(await done(store.delete(p + 'b/', { prefix: true }))).toEqual({ deleted: 3 })
    expect(await done(store.list(p))).toEqual([])
  })

  it('runs put-if-absent, compare-and-swap and compare-and-delete atomically', async () => {
    const store = open()
    const p = fresh('txn')
    const putIfAbsent = (value: string) =>
      done(
        store.txn([{ op: 'put', key: p + 'lock', value: enc(value) }], {
          conditions: [{ key: p + 'lock', exists: false }],
        }),
      )
    expect((await putIfAbsent('first'))?.succeeded).toBe(true)
    const second = await putIfAbsent('second')
    expect(second?.succeeded).toBe(false)
    expect(typeof second?.revision).toBe('bigint')

    const cas = (from: string, to: string) =>
      done(
        store.txn([{ op: 'put', key: p + 'lock', value: enc(to) }], {
          conditions: [{ key: p + 'lock', value: enc(from) }],
        }),
      )
    expect((await cas('stale', 'x'))?.succeeded).toBe(false)
    const swapped = await cas('first', 'swapped')
    expect(swapped?.succeeded).toBe(true)
    const after = await done(store.get(p + 'lock'))
    expect(after && dec(after.value)).toBe('swapped')
    expect(after?.revision).toBe(swapped?.revision)

    const cad = (value: string) =>
      done(
        store.txn([{ op: 'delete', key: p + 'lock' }], {
          conditions: [{ key: p + 'lock', value: enc(value) }],
        }),
      )
    expect((await cad('first'))?.succeeded).toBe(false)
    expect((await cad('swapped'))?.succeeded).toBe(true)
    expect(await done(store.get(p + 'lock'))).toBeUndefined()
    // On a missing key, a value condition fails (as compare-and-swap wants).
    expect((await cas('swapped', 'again'))?.succeeded).toBe(false)
  })

  it('refuses a transaction that writes a key twice, naming the key', async () => {
    const store = open()
    const p = fresh('dup')
    const attempt = done(
      store.txn([
        { op: 'put', key: p + 'k', value: enc('1') },
        { op: 'delete', key: p, prefix: true },
      ]),
    )
    await expect(attempt).rejects.toMatchObject({ code: 'invalid-argument' })
    await expect(attempt).rejects.toThrow(p + 'k')
  })

  it('maps etcd refusals to typed errors: too many operations in one transaction', async () => {
    const store = open()
    const p = fresh('many')
    const ops = Array.from({ length: 200 }, (_, i) => ({
      op: 'put' as const,
      key: `${p}${i}`,
      value: enc('v'),
    }))
    const error = await done(store.txn(ops)).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(DatasyncError)
    expect(error).toMatchObject({ code: 'invalid-argument', retryable: false })
    expect((error as Error).message).toContain('too many operations')
  })

  it('does nothing until subscribed: a store for a dead endpoint fails only when used', async () => {
    const store = open({
      endpoints: ['127.0.0.1:1'],
      dialTimeout: '300ms',
      operationTimeout: '500ms',
    })
    const get = store.get('k')
    const put = store.put('k', enc('v'))
    expect(store.capabilities.write).toBe(true)
    const error = await done(get).catch((caught: unknown) => caught)
    expect(error).toMatchObject({ retryable: true })
    expect((error as Error).message).toContain('127.0.0.1:1')
    await expect(done(put)).rejects.toMatchObject({ retryable: true })
  })
})

describe('leases', () => {
  it('shares one lease among puts with the same TTL, and the key expires with a delete carrying its last value', async () => {
    const store = open()
    const raw = rawClient(server().endpoints)
    try {
      const p = fresh('ttl')
      const sync = createDatasync(store, { ackTimeout: '10s' })
      const recorder = recordConsumer(sync.register('ttl', { prefixes: [p], codec: text }))
      sync.start()
      await firstValueFrom(sync.status$.pipe(filter((status) => status.state === 'in-sync')))
      const results = await lastValueFrom(
        from(
          Array.from({ length: 50 }, (_, i): Publication<Uint8Array> => ({
            op: 'put',
            key: `${p}${i}`,
            value: enc(`v${i}`),
            ttl: '2s',
          })),
        ).pipe(publishTo(store, { concurrency: 50 }), toArray()),
      )
      expect(results.every((result) => result.ok)).toBe(true)
      const kvs = await raw.getAll().prefix(p).exec()
      const leases = new Set(kvs.kvs.map((kv) => kv.lease))
      expect(kvs.kvs).toHaveLength(50)
      expect(leases.has('0')).toBe(false)
      // One grant for the burst (two if it straddled the window).
      expect(leases.size).toBeLessThanOrEqual(2)
      await recorder.until((state) => state.size === 50, '20s')
      await recorder.until((state) => state.size === 0, '30s')
      const deletes = recorder.events.flatMap((event) =>
        event.kind === 'change' ? event.changes.filter((change) => change.op === 'delete') : [],
      )
      expect(deletes).toHaveLength(50)
      for (const change of deletes) expect(change.prev).toBe(`v${change.key.slice(p.length)}`)
      expect(recorder.violations).toEqual([])
      sync.close()
    } finally {
      raw.close()
    }
  })

  it('keeps session keys alive while the client lives and deletes them when it closes', async () => {
    const store = open({ sessionTtl: '2s' })
    const raw = rawClient(server().endpoints)
    try {
      const p = fresh('session')
      await done(store.put(p + 'member', enc('here'), { session: true }))
      await done(
        store.txn([{ op: 'put', key: p + 'leader', value: enc('me'), session: true }], {
          conditions: [{ key: p + 'leader', exists: false }],
        }),
      )
      const first = await raw.getAll().prefix(p).exec()
      expect(first.kvs).toHaveLength(2)
      const lease = first.kvs[0]!.lease
      expect(lease).not.toBe('0')
      expect(first.kvs[1]!.lease).toBe(lease)
      // Three TTLs later the keys are still there: the store keeps the lease alive.
      const ttl = await raw.leaseClient.leaseTimeToLive({ ID: lease })
      expect(Number(ttl.grantedTTL)).toBe(2)
      await pollUntil(
        async () => {
          const left = await raw.leaseClient.leaseTimeToLive({ ID: lease })
          return Number(left.TTL) > 0 && Number(left.TTL) < 2
        },
        { timeoutMs: 10_000, description: 'the session lease to tick' },
      )
      // Proving that nothing expires needs time to pass: three session TTLs.
      await new Promise((resolve) => setTimeout(resolve, 6_000))
      expect((await raw.getAll().prefix(p).keys()).length).toBe(2)
      await store.close()
      // close() revokes the session lease: the keys go at once, not a TTL later.
      expect(await raw.getAll().prefix(p).keys()).toEqual([])
    } finally {
      raw.close()
    }
  })

  it('lets session keys expire when the client is cut off for longer than the session TTL', async () => {
    const proxy = await startTcpProxy(server().clientPort)
    const store = open({ endpoints: [proxy.url], sessionTtl: '2s' })
    const raw = rawClient(server().endpoints)
    try {
      const p = fresh('session-lost')
      await done(store.put(p + 'ephemeral', enc('1'), { session: true }))
      await proxy.interrupt()
      await pollUntil(async () => (await raw.getAll().prefix(p).keys()).length === 0, {
        timeoutMs: 20_000,
        description: 'the session key to expire',
      })
      await proxy.restore()
      // The next session put gets a new lease (the old one is gone).
      await pollUntil(
        async () => {
          try {
            await done(store.put(p + 'again', enc('2'), { session: true }))
            return true
          } catch {
            return false
          }
        },
        { timeoutMs: 20_000, description: 'a session put after the outage' },
      )
      const kvs = await raw.getAll().prefix(p).exec()
      expect(kvs.kvs.map((kv) => kv.key.toString())).toEqual([p + 'again'])
      const left = await raw.leaseClient.leaseTimeToLive({ ID: kvs.kvs[0]!.lease })
      expect(Number(left.TTL)).toBeGreaterThan(0)
    } finally {
      raw.close()
      await store.close()
      await proxy.close()
    }
  })
})

describe('listing and resync', () => {
  it('pages a listing larger than the 4 MiB reply limit, every page at one revision', async () => {
    const store = open()
    const raw = rawClient(server().endpoints, {
      faultHandling: { host: () => passThrough, global: passThrough },
    })
    try {
      const p = fresh('big')
      const big = (generation: number, i: number) => `${generation}:${i}:`.padEnd(20 * 1024, 'x')
      for (let i = 0; i < 300; i += 50) {
        await done(
          store.txn(
            Array.from({ length: 50 }, (_, j) => ({
              op: 'put' as const,
              key: `${p}${String(i + j).padStart(3, '0')}`,
              value: enc(big(0, i + j)),
            })),
          ),
        )
      }
      // One reply with everything is refused by gRPC's default 4 MiB limit.
      await expect(raw.getAll().prefix(p).exec()).rejects.toThrow(
        /larger than max|RESOURCE_EXHAUSTED/i,
      )

      // A writer rewrites the first and the last key together, in one transaction, over and over:
      // a listing whose pages read different revisions would show them with different generations.
      let generation = 0
      let writing = true
      const writer = (async () => {
        while (writing) {
          generation++
          await raw
            .if(`${p}000`, 'Version', '>', 0)
            .then(
              raw.put(`${p}000`).value(big(generation, 0)),
              raw.put(`${p}299`).value(big(generation, 299)),
            )
            .commit()
        }
      })()
      try {
        const before = await rangeCalls(server().clientUrl)
        for (let round = 0; round < 4; round++) {
          const start = await currentRevision(raw)
          const items = await done(store.list(p))
          const end = await currentRevision(raw)
          expect(items).toHaveLength(300)
          const first = dec(items![0]!.value).split(':')[0]
          const last = dec(items![299]!.value).split(':')[0]
          expect(first).toBe(last)
          expect(end > start).toBe(true)
        }
        const pages = (await rangeCalls(server().clientUrl)) - before
        // 4 listings of 6 MiB in pages of about 2 MiB (plus the revision reads above).
        expect(pages).toBeGreaterThanOrEqual(4 * 3)
      } finally {
        writing = false
        await writer
      }
    } finally {
      raw.close()
    }
  })

  it('resyncs 100 000 keys in one consistent snapshot', async () => {
    const store = open()
    const p = fresh('many')
    const count = 100_000
    const batch = 100
    const batches = Array.from({ length: count / batch }, (_, b) => b)
    // Transactions of 100 puts, 16 at a time.
    await Promise.all(
      Array.from({ length: 16 }, async (_, worker) => {
        for (let b = worker; b < batches.length; b += 16) {
          await done(
            store.txn(
              Array.from({ length: batch }, (_, i) => ({
                op: 'put' as const,
                key: `${p}${String(b * batch + i).padStart(6, '0')}`,
                value: enc(`value-${b * batch + i}`),
              })),
            ),
          )
        }
      }),
    )
    const started = Date.now()
    const snapshot = await firstValueFrom(
      store.watch([p]).pipe(
        filter((event): event is SnapshotEvent<Uint8Array> => event.type === 'snapshot'),
        timeout(60_000),
      ),
    )
    const elapsed = Date.now() - started
    console.log(`[etcd] snapshot of ${count} keys in ${elapsed} ms`)
    expect(snapshot.items).toHaveLength(count)
    expect(new Set(snapshot.items.map((item) => item.key)).size).toBe(count)
    expect(snapshot.items.every((item) => item.revision <= snapshot.revision)).toBe(true)
    expect(dec(snapshot.items[54_321]!.value)).toBe('value-54321')
  })
})

describe('writes in flight', () => {
  it('a burst of 10 000 puts through the publisher stays within the in-flight bound', async () => {
    // Subscribing 10 000 publications takes this shared test machine about 2 s of synchronous
    // work, during which the first requests' timeouts already run: the timeout is generous here.
    const store = open({ maxWritesInFlight: 64, operationTimeout: '30s' })
    const p = fresh('burst')
    let peak = 0
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        const pending = await etcdMetric(server().clientUrl, 'etcd_server_proposals_pending')
        peak = Math.max(peak, pending)
      }
    })()
    const started = Date.now()
    const published = await lastValueFrom(
      range(0, 10_000).pipe(
        map((i): Publication<Uint8Array> => ({ op: 'put', key: `${p}${i}`, value: enc(`v${i}`) })),
        publishTo(store, { concurrency: 10_000, retries: 0 }),
        toArray(),
      ),
    )
    sampling = false
    await sampler
    console.log(
      `[etcd] 10 000 puts through publishTo (concurrency 10 000, maxWritesInFlight 64): ${Date.now() - started} ms, peak pending proposals ${peak}`,
    )
    expect(published).toHaveLength(10_000)
    const failed = published.filter((result) => !result.ok)
    expect(failed.map((result) => (result.ok ? '' : result.error.message)).slice(0, 3)).toEqual([])
    expect(published.every((result) => result.attempts === 1)).toBe(true)
    expect(peak).toBeLessThanOrEqual(64)
    expect((await done(store.listKeys(p)))?.length).toBe(10_000)
  })
})

describe('watch', () => {
  it('watches several prefixes; a transaction across them is one changes event with prev values', async () => {
    const store = open()
    const p = fresh('multi')
    await done(store.put(p + 'a/1', enc('a1')))
    await done(store.put(p + 'b/1', enc('b1')))
    await done(store.put(p + 'c/1', enc('c1')))
    const events: StoreEvent<Uint8Array>[] = []
    const subscription = store
      .watch([p + 'a/', p + 'c/', p + 'a/x/'])
      .subscribe((event) => events.push(event))
    try {
      await pollUntil(() => events.length > 0, { description: 'the snapshot' })
      const snapshot = events[0] as SnapshotEvent<Uint8Array>
      expect(snapshot.type).toBe('snapshot')
      expect(snapshot.cause).toBe('startup')
      expect(snapshot.items.map((item) => item.key)).toEqual([p + 'a/1', p + 'c/1'])
      const result = await done(
        store.txn([
          { op: 'put', key: p + 'a/1', value: enc('a2') },
          { op: 'put', key: p + 'b/1', value: enc('b2') },
          { op: 'delete', key: p + 'c/1' },
          { op: 'put', key: p + 'a/x/1', value: enc('x') },
        ]),
      )
      await pollUntil(() => events.length > 1, { description: 'the changes' })
      const changes = events[1] as ChangesEvent<Uint8Array>
      expect(changes.type).toBe('changes')
      expect(changes.revision).toBe(result?.revision)
      expect(
        changes.changes.map((change) => [
          change.op,
          change.key.slice(p.length),
          change.op === 'put' ? dec(change.value) : '-',
          change.prev === undefined ? '-' : dec(change.prev),
        ]),
      ).toEqual([
        ['put', 'a/1', 'a2', 'a1'],
        ['delete', 'c/1', '-', 'c1'],
        ['put', 'a/x/1', 'x', '-'],
      ])
      // The write outside the prefixes moved the revision on but brought no event.
      await done(store.put(p + 'b/2', enc('b')))
      await done(store.put(p + 'a/2', enc('a')))
      await pollUntil(() => events.length > 2, { description: 'the next change' })
      expect(events).toHaveLength(3)
      expect((events[2] as ChangesEvent<Uint8Array>).changes.map((change) => change.key)).toEqual([
        p + 'a/2',
      ])
    } finally {
      subscription.unsubscribe()
    }
  })

  it('is cold and releases the server-side watch on unsubscribe; status$ follows', async () => {
    const store = open({ statusInterval: '200ms' })
    const p = fresh('cold')
    // Watches of earlier tests are released asynchronously on the server: start from none.
    await watchersReach(server().endpoints, 0)
    const watch = store.watch([p])
    expect(await watcherCount(server().endpoints)).toBe(0)
    const subscription = watch.subscribe()
    await pollUntil(async () => (await watcherCount(server().endpoints)) === 1, {
      description: 'the watch on the server',
    })
    await statusReaches(store.status$, 'ready')
    subscription.unsubscribe()
    await pollUntil(async () => (await watcherCount(server().endpoints)) === 0, {
      description: 'the watch to be released',
    })
    await store.close()
    const final = await lastValueFrom(store.status$.pipe(toArray()))
    expect(final).toEqual([{ state: 'closed' }])
    await expect(done(store.get(p))).rejects.toMatchObject({ code: 'closed' })
  })
})

describe('compaction', () => {
  it('compacts to the current revision or a given one; a watch behind it relists', async () => {
    const store = open()
    const raw = rawClient(server().endpoints)
    try {
      const p = fresh('compact')
      await done(store.put(p + 'k', enc('1')))
      const at = await currentRevision(raw)
      await done(store.put(p + 'k', enc('2')))
      expect(await done(store.compact(revision(at)))).toEqual({ revision: revision(at) })
      await expect(
        raw
          .get(p + 'k')
          .revision(String(at - 1n))
          .string(),
      ).rejects.toThrow(/compacted/)
      const current = await done(store.compact())
      expect(current?.revision).toBe(revision(await currentRevision(raw)))
      await expect(done(store.compact(revision(at)))).rejects.toMatchObject({ code: 'compacted' })
    } finally {
      raw.close()
    }
  })

  it('auto-compacts periodically, keeping one period of history', async () => {
    const store = open({ autoCompact: '1s', statusInterval: '200ms' })
    const raw = rawClient(server().endpoints)
    const subscription = store.status$.subscribe()
    try {
      const p = fresh('auto')
      const first = await currentRevision(raw)
      await done(store.put(p + 'k', enc('1')))
      // The history before `first` goes within a couple of periods.
      await pollUntil(
        async () => {
          try {
            await raw
              .get(p + 'k')
              .revision(String(first))
              .string()
            return false
          } catch (error) {
            return /compacted/.test(String(error))
          }
        },
        { timeoutMs: 20_000, description: 'auto-compaction' },
      )
      // The last period's history is still there.
      const now = await currentRevision(raw)
      await expect(
        raw
          .get(p + 'k')
          .revision(String(now))
          .string(),
      ).resolves.toBe('1')
    } finally {
      subscription.unsubscribe()
      raw.close()
    }
  })
})
