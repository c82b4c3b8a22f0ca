/**
 * The PostgreSQL store under concurrency and faults, on a server of this file's own: eight
 * writers in parallel transactions while a watch runs; kill -9 of the server during writes and
 * a restart; pg_terminate_backend of the watch's connection; compaction past a disconnected
 * watcher; resuming with `after`. Each test works on a table of its own, so revisions in it are
 * the test's alone and can be checked against the table itself.
 */
import pg from 'pg'
import { firstValueFrom, lastValueFrom, filter, type Subscription } from 'rxjs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createPostgresStore, type PostgresStore } from '../../src/backends/postgres/index.js'
import { WATCH_APPLICATION } from '../../src/backends/postgres/connection.js'
import {
  createDatasync,
  revision,
  string,
  type Datasync,
  type KvStore,
  type StoreEvent,
} from '../../src/index.js'
import { recordConsumer } from '../../src/testing/index.js'
import { pollUntil } from '../servers/index.js'
import { startPostgres, type PostgresServer } from '../servers/postgres.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'

const text = string()
const enc = (value: string) => text.encode(value)
const dec = (raw: Uint8Array) => text.decode(raw)

let server: PostgresServer
let tables = 0
const closers: (() => Promise<void> | void)[] = []

beforeAll(async () => {
  server = await startPostgres()
}, 120_000)
afterAll(async () => {
  await server.cleanup()
}, 60_000)
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

/** A store on a fresh table; through `proxy` when given. */
function storeOn(table: string, proxy?: TcpProxy, extra: object = {}): PostgresStore {
  const store = createPostgresStore({
    ...server.connection(),
    ...(proxy === undefined ? {} : { port: proxy.port }),
    table,
    reconnectInterval: '300ms',
    poolSize: 10,
    ...extra,
  })
  closers.push(() => store.close())
  return store
}

function freshTable(): string {
  tables++
  return `faults_${tables}`
}

/** Records a raw watch's events; `state` is what they add up to. */
function record(store: KvStore, prefixes: readonly string[], after?: bigint) {
  const events: StoreEvent<Uint8Array>[] = []
  const state = new Map<string, string>()
  const subscription: Subscription = store
    .watch(prefixes, after === undefined ? undefined : { after: revision(after) })
    .subscribe((event) => {
      events.push(event)
      if (event.type === 'snapshot') {
        state.clear()
        for (const item of event.items) state.set(item.key, dec(item.value))
      } else {
        for (const change of event.changes) {
          if (change.op === 'put') state.set(change.key, dec(change.value))
          else state.delete(change.key)
        }
      }
    })
  closers.push(() => {
    subscription.unsubscribe()
  })
  return { events, state }
}

async function listed(store: KvStore, prefix: string): Promise<Map<string, string>> {
  const items = await lastValueFrom(store.list(prefix))
  return new Map(items.map((item) => [item.key, dec(item.value)]))
}

/** Retries `write` until it succeeds (the server may be down for a while). */
async function persist(write: () => Promise<unknown>): Promise<void> {
  await pollUntil(
    async () => {
      await write()
      return true
    },
    { timeoutMs: 60_000, maxIntervalMs: 200, attemptTimeoutMs: 20_000, description: 'a write' },
  )
}

function changeRevisions(events: readonly StoreEvent<Uint8Array>[]): bigint[] {
  return events.filter((event) => event.type === 'changes').map((event) => event.revision)
}

describe('postgres store under concurrency and faults', { timeout: 120_000 }, () => {
  it('8 writers in parallel transactions: the watch sees every write once, in revision order, none skipped', async () => {
    const table = freshTable()
    const store = storeOn(table)
    const watched = record(store, ['c/'])
    await pollUntil(() => watched.events.length > 0, { description: 'the snapshot' })
    const results: { revision: bigint; keys: string[] }[] = []
    const writers = Array.from({ length: 8 }, async (_, w) => {
      const writer = storeOn(table)
      for (let i = 0; i < 25; i++) {
        const keys = [`c/${w}/${i % 5}`, `c/shared/${i % 3}`]
        const ops =
          i % 4 === 3
            ? [{ op: 'delete' as const, key: keys[0] ?? '' }]
            : keys.map((key) => ({ op: 'put' as const, key, value: enc(`${w}:${i}`) }))
        const result = await lastValueFrom(writer.txn(ops))
        if (result.succeeded) results.push({ revision: result.revision, keys })
      }
    })
    await Promise.all(writers)
    const head = results.reduce(
      (max, result) => (result.revision > max ? result.revision : max),
      0n,
    )
    await pollUntil(() => changeRevisions(watched.events).at(-1) === head, {
      timeoutMs: 30_000,
      description: `the watch to reach revision ${head}`,
    })
    const seen = changeRevisions(watched.events)
    // One snapshot only, then strictly increasing revisions, each once.
    expect(watched.events.filter((event) => event.type === 'snapshot')).toHaveLength(1)
    expect(seen).toEqual([...seen].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)))
    expect(new Set(seen).size).toBe(seen.length)
    // Against the table: every revision that wrote a row under c/ was delivered, with its rows.
    const rows = await server.query<{ revision: string; key: string }>(
      `SELECT revision, key FROM ${table} WHERE key LIKE 'c/%' ORDER BY revision, key`,
    )
    const delivered = watched.events.flatMap((event) =>
      event.type === 'changes'
        ? event.changes.map((change) => `${event.revision}:${change.key}`)
        : [],
    )
    expect(delivered).toEqual(rows.map((row) => `${row.revision}:${row.key}`))
    // Revisions are gap-free: 1..head, each written by exactly one transaction.
    const meta = await server.query<{ revision: string }>(`SELECT revision FROM ${table}_meta`)
    expect(BigInt(meta[0]?.revision ?? -1)).toBe(head)
    expect(new Set(rows.map((row) => row.revision)).size).toBe(Number(head))
    expect(watched.state).toEqual(await listed(store, 'c/'))
  })

  it('a transaction holding its revision open makes the next writer wait: the watch never passes it', async () => {
    const table = freshTable()
    const store = storeOn(table)
    await lastValueFrom(store.put('o/0', enc('0')))
    const watched = record(store, ['o/'])
    await pollUntil(() => watched.events.length > 0, { description: 'the snapshot' })
    // A slow writer by hand: the store's own statements, its transaction left open.
    const slow = new pg.Client(server.connection())
    await slow.connect()
    closers.push(() => slow.end())
    await slow.query('BEGIN')
    const locked = await slow.query<{ revision: string }>(
      `UPDATE ${table}_meta SET revision = revision + 1 WHERE id = 1 RETURNING revision`,
    )
    await slow.query(
      `INSERT INTO ${table} (revision, key, deleted, value) VALUES ($1, 'o/slow', false, 'x')`,
      [locked.rows[0]?.revision],
    )
    // A second writer must wait for the slow one's revision to commit before taking the next.
    let fastDone = false
    const fast = lastValueFrom(store.txn([{ op: 'put', key: 'o/fast', value: enc('y') }])).then(
      (result) => {
        fastDone = true
        return result
      },
    )
    await pollUntil(
      async () => {
        const rows = await server.query<{ wait_event_type: string | null }>(
          `SELECT wait_event_type FROM pg_stat_activity WHERE application_name = 'rx-datasync' AND wait_event_type = 'Lock'`,
        )
        return rows.length > 0
      },
      { description: 'the second writer to wait for the lock' },
    )
    expect(fastDone).toBe(false)
    expect(changeRevisions(watched.events)).toEqual([])
    await slow.query('COMMIT')
    const { revision: fastRevision } = await fast
    expect(fastRevision).toBe(BigInt(locked.rows[0]?.revision ?? 0) + 1n)
    await pollUntil(() => changeRevisions(watched.events).length === 2, {
      description: 'both writes on the watch',
    })
    expect(changeRevisions(watched.events)).toEqual([fastRevision - 1n, fastRevision])
  })

  it('kill -9 of the server during writes, then a restart: consumers end holding the table', async () => {
    const table = freshTable()
    const store = storeOn(table)
    const sync: Datasync<Uint8Array> = createDatasync(store, { ackTimeout: '10s' })
    closers.push(() => {
      sync.close()
    })
    const recorder = recordConsumer(sync.register('k', { prefixes: ['k/'], codec: text }))
    const watched = record(store, ['k/'])
    sync.start()
    await firstValueFrom(sync.status$.pipe(filter((status) => status.state === 'in-sync')))
    const writer = storeOn(table)
    let written = 0
    const writing = (async () => {
      for (let i = 0; i < 60; i++) {
        await persist(() => lastValueFrom(writer.put(`k/${i % 7}`, enc(String(i)))))
        if (i % 9 === 8) await persist(() => lastValueFrom(writer.delete(`k/${i % 7}`)))
        written++
      }
    })()
    await pollUntil(() => written >= 15, { description: '15 writes before the kill' })
    await server.kill()
    await server.start()
    await writing
    const truth = await listed(writer, 'k/')
    await recorder.untilEquals(
      [...truth].map(([key, value]) => ({ key, value, revision: revision(0n) })),
      30_000,
    )
    expect(recorder.violations).toEqual([])
    const sorted = (map: ReadonlyMap<string, string>) => JSON.stringify([...map].sort())
    await pollUntil(() => sorted(watched.state) === sorted(truth), {
      description: 'the raw watch to hold the table',
    })
    const seen = changeRevisions(watched.events)
    expect(new Set(seen).size).toBe(seen.length)
  })

  it('pg_terminate_backend of the watch connection: it resumes after its revision, no snapshot', async () => {
    const table = freshTable()
    const store = storeOn(table)
    const watched = record(store, ['t/'])
    await pollUntil(async () => (await server.connections(WATCH_APPLICATION)) === 1, {
      description: 'the watch connection',
    })
    await pollUntil(() => watched.events.length > 0, { description: 'the snapshot' })
    await lastValueFrom(store.put('t/1', enc('a')))
    await pollUntil(() => watched.state.get('t/1') === 'a', { description: 't/1 to arrive' })
    expect(await server.terminate(WATCH_APPLICATION)).toBe(1)
    await lastValueFrom(store.put('t/1', enc('b')))
    await lastValueFrom(store.put('t/2', enc('c')))
    await pollUntil(() => watched.state.get('t/2') === 'c', { description: 't/2 to arrive' })
    expect(watched.events.filter((event) => event.type === 'snapshot')).toHaveLength(1)
    const puts = watched.events.flatMap((event) =>
      event.type === 'changes' ? event.changes.map((change) => change.key) : [],
    )
    expect(puts).toEqual(['t/1', 't/1', 't/2'])
    const last = watched.events.at(-2)
    expect(last?.type === 'changes' && last.changes[0]?.prev).toEqual(enc('a'))
  })

  it('compaction past a disconnected watcher: it relists (cause compacted) and consumers converge', async () => {
    const table = freshTable()
    const proxy = await startTcpProxy(server.port)
    closers.push(() => proxy.close())
    const store = storeOn(table, proxy)
    const writer = storeOn(table)
    await lastValueFrom(writer.put('p/gone', enc('1')))
    await lastValueFrom(writer.put('p/kept', enc('1')))
    const sync = createDatasync(store, { ackTimeout: '10s' })
    closers.push(() => {
      sync.close()
    })
    const recorder = recordConsumer(sync.register('p', { prefixes: ['p/'], codec: text }))
    const watched = record(store, ['p/'])
    sync.start()
    await firstValueFrom(sync.status$.pipe(filter((status) => status.state === 'in-sync')))
    await pollUntil(() => watched.events.length > 0, { description: 'the raw snapshot' })
    await proxy.interrupt()
    await lastValueFrom(writer.delete('p/gone'))
    await lastValueFrom(writer.put('p/kept', enc('2')))
    await lastValueFrom(writer.put('p/new', enc('3')))
    const compacted = await lastValueFrom(writer.compact())
    await proxy.restore()
    await pollUntil(
      () =>
        watched.events.some((event) => event.type === 'snapshot' && event.cause === 'compacted'),
      { timeoutMs: 30_000, description: 'a compacted snapshot' },
    )
    const truth = await listed(writer, 'p/')
    expect(watched.state).toEqual(truth)
    expect(watched.events.at(-1)?.revision).toBe(compacted.revision)
    await recorder.untilEquals(
      [...truth].map(([key, value]) => ({ key, value, revision: revision(0n) })),
      30_000,
    )
    expect(recorder.violations).toEqual([])
    const changes = recorder.events.flatMap((event) =>
      event.kind === 'change' ? event.changes : [],
    )
    expect(changes.find((change) => change.key === 'p/gone')).toMatchObject({
      op: 'delete',
      prev: '1',
    })
  })

  it('watch with after: resumes with no snapshot while history lasts, relists once compacted', async () => {
    const table = freshTable()
    const store = storeOn(table)
    await lastValueFrom(store.put('a/1', enc('1')))
    const { revision: at } = await lastValueFrom(
      store.txn([{ op: 'put', key: 'a/2', value: enc('2') }]),
    )
    await lastValueFrom(store.put('a/1', enc('3')))
    const resumed = record(store, ['a/'], at)
    await pollUntil(() => resumed.events.length > 0, { description: 'the resumed change' })
    expect(resumed.events[0]).toMatchObject({ type: 'changes', revision: at + 1n })
    await lastValueFrom(store.compact())
    const relisted = record(store, ['a/'], at)
    await pollUntil(() => relisted.events.length > 0, { description: 'the relisted snapshot' })
    expect(relisted.events[0]).toMatchObject({ type: 'snapshot', cause: 'compacted' })
    expect(relisted.state).toEqual(
      new Map([
        ['a/1', '3'],
        ['a/2', '2'],
      ]),
    )
  })

  it('a paused server degrades the status; resumed, the store is ready again', async () => {
    const table = freshTable()
    const store = storeOn(table, undefined, { operationTimeout: '1s', reapInterval: '200ms' })
    const states: string[] = []
    const subscription = store.status$.subscribe((status) => states.push(status.state))
    closers.push(() => {
      subscription.unsubscribe()
    })
    await pollUntil(() => states.at(-1) === 'ready', { description: 'ready' })
    await server.pause()
    try {
      await pollUntil(() => states.at(-1) === 'degraded', { description: 'degraded' })
    } finally {
      server.resume()
    }
    await pollUntil(() => states.at(-1) === 'ready', { description: 'ready again' })
  })
})
