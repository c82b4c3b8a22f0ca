/**
 * The PostgreSQL store's `identity()` on real servers: the same across store instances and a
 * restart of the server, another for another server, another database and a table dropped and
 * made again; an error (retryable, in time) while the server is down. And `persist` with it: a
 * snapshot saved from one store is reported (`identity`) and not applied on another, whose data
 * the consumers end holding; on the same store it is resumed.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { firstValueFrom, lastValueFrom, toArray } from 'rxjs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createPostgresStore, type PostgresStore } from '../../src/backends/postgres/index.js'
import { isRetryable, type Duration, type Revision } from '../../src/index.js'
import { startPostgres, type PostgresServer } from '../servers/postgres.js'
import {
  identityFailure,
  identityOf,
  isIdentityError,
  persistRun,
  type PersistRun,
} from '../support/persist-run.js'

const encode = (text: string) => new TextEncoder().encode(text)

let server: PostgresServer
/** Another server (its own system identifier). */
let other: PostgresServer
let dir = ''
const closers: (() => unknown)[] = []
beforeAll(async () => {
  ;[server, other] = await Promise.all([startPostgres(), startPostgres({ name: 'postgres-b' })])
  await server.query('CREATE DATABASE second')
  dir = await mkdtemp(join(tmpdir(), 'rx-datasync-persist-postgres-'))
})
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
  if (!server.running) await server.start()
})
afterAll(async () => {
  await server?.cleanup()
  await other?.cleanup()
  await rm(dir, { recursive: true, force: true, maxRetries: 5 })
})

function storeOn(
  on: PostgresServer,
  table: string,
  database = on.database,
  extra: { operationTimeout?: Duration; connectTimeout?: Duration } = {},
): PostgresStore {
  const store = createPostgresStore({
    ...on.connection(),
    database,
    table,
    reconnectInterval: '200ms',
    ...extra,
  })
  closers.push(() => store.close())
  return store
}

async function put(store: PostgresStore, key: string, value: string): Promise<Revision> {
  const result = await firstValueFrom(store.txn([{ op: 'put', key, value: encode(value) }]))
  return result.revision
}

describe('postgres identity()', () => {
  it('is one string, then complete; the same on another store instance and after a restart', async () => {
    const store = storeOn(server, 'ident_same')
    const all = await lastValueFrom(store.identity!().pipe(toArray()))
    expect(all).toHaveLength(1)
    const first = all[0] ?? ''
    expect(first).toMatch(
      /^postgres system \d+ database postgres table ident_same \(oids \d+\/\d+\)$/,
    )
    expect(await identityOf(storeOn(server, 'ident_same'))).toBe(first)

    // kill -9 and a start (a stop waits for the pool's idle connections).
    await server.kill()
    await server.start()
    expect(await identityOf(store)).toBe(first)
    expect(await identityOf(storeOn(server, 'ident_same'))).toBe(first)
  })

  it('differs for another server, another database, another table, a table made again', async () => {
    const here = await identityOf(storeOn(server, 'ident_diff'))
    const found = [
      here,
      await identityOf(storeOn(other, 'ident_diff')),
      await identityOf(storeOn(server, 'ident_diff', 'second')),
      await identityOf(storeOn(server, 'ident_diff_2')),
    ]
    // The other server's system identifier differs (initdb made each).
    expect(found[1]?.split(' ')[2]).not.toBe(here.split(' ')[2])
    await server.query('DROP TABLE ident_diff, ident_diff_meta')
    found.push(await identityOf(storeOn(server, 'ident_diff')))
    expect(new Set(found).size).toBe(found.length)
  })

  it('fails, retryable, within the operation timeout while the server hangs or is down', async () => {
    const store = storeOn(server, 'ident_down', server.database, {
      operationTimeout: '2s',
      connectTimeout: '1s',
    })
    const known = await identityOf(store)
    const failure = async (asked: PostgresStore) => {
      const { error, ms } = await identityFailure(asked)
      expect(isRetryable(error)).toBe(true)
      expect((error as Error).message).toMatch(/read the store identity/)
      return ms
    }
    // SIGSTOP: connections open, nothing answers; the operation timeout (2 s) ends it.
    await server.pause()
    try {
      expect(await failure(store)).toBeLessThan(5_000)
    } finally {
      server.resume()
    }
    expect(await identityOf(store)).toBe(known)
    // Stopped: refused at once, for the store with a pool and for a new one.
    await server.kill()
    expect(await failure(store)).toBeLessThan(5_000)
    expect(await failure(storeOn(server, 'ident_down'))).toBeLessThan(5_000)
  })
})

describe('postgres identity() as a plain role', () => {
  it('answers for a role that is no superuser', async () => {
    await server.query('CREATE ROLE plain LOGIN')
    await server.query('CREATE SCHEMA plain AUTHORIZATION plain')
    const store = createPostgresStore({
      ...server.connection(),
      user: 'plain',
      table: 'plain.ident_plain',
    })
    closers.push(() => store.close())
    expect(await identityOf(store)).toMatch(
      /^postgres system \d+ database postgres table plain\.ident_plain \(oids \d+\/\d+\)$/,
    )
  })
})

describe('persist on postgres', () => {
  let runs = 0
  const runsToClose: PersistRun[] = []
  afterEach(() => {
    for (const run of runsToClose.splice(0)) run.close()
  })
  const start = (store: PostgresStore, file: string) => {
    const run = persistRun(store, file, { a: ['a/'] })
    runsToClose.push(run)
    return run
  }

  /** Store A with data, and a snapshot of it saved by a first orchestrator run. */
  async function saved(table: string): Promise<{ file: string; revision: Revision }> {
    const file = join(dir, `run-${++runs}.snapshot`)
    const store = storeOn(server, table)
    await put(store, 'a/1', 'one')
    const revision = await put(store, 'a/2', 'two')
    const first = start(store, file)
    await first.waitFor('the first resync', (m) => 'label' in m && m.label.startsWith('R('))
    expect(first.labels('a')).toEqual(['R(startup) a/1=one a/2=two'])
    await first.saved(revision)
    first.close()
    return { file, revision }
  }

  it('saved from another database: reported (identity), the consumers hold its data', async () => {
    const { file, revision } = await saved('persist_other')
    // Database B's revision passes the saved one: a resume there would be accepted.
    const b = storeOn(server, 'persist_other', 'second')
    await put(b, 'a/1', 'B-one')
    let at = await put(b, 'a/9', 'B-nine')
    while (at <= revision + 1n) at = await put(b, 'filler', String(at))

    const run = start(b, file)
    const report = await run.waitFor('the identity report', isIdentityError)
    expect(report.type === 'error' && report.error.message).toMatch(
      /identity: saved from postgres system \d+ database postgres table persist_other .*, but the store is postgres system \d+ database second table persist_other/,
    )
    await run.waitFor('the resync of B', (m) => 'label' in m && m.label.startsWith('R('))
    expect(run.labels('a')).toEqual(['R(startup) a/1=B-one a/9=B-nine'])
    expect(run.errors()).toHaveLength(1)
  })

  it('saved from a table since dropped and made again: reported, B data only', async () => {
    const { file } = await saved('persist_remade')
    await server.query('DROP TABLE persist_remade, persist_remade_meta')
    const remade = storeOn(server, 'persist_remade')
    await put(remade, 'a/5', 'five')

    const run = start(remade, file)
    await run.waitFor('the identity report', isIdentityError)
    await run.waitFor('the resync', (m) => 'label' in m && m.label.startsWith('R('))
    expect(run.labels('a')).toEqual(['R(startup) a/5=five'])
  })

  it('the same store: restored and resumed, no identity error', async () => {
    const { file } = await saved('persist_same')
    const store = storeOn(server, 'persist_same')
    const three = await put(store, 'a/3', 'three')

    const run = start(store, file)
    await run.waitFor('the change', (m) => 'label' in m && m.label === 'C(live) a/3:x>three')
    await run.saved(three)
    expect(run.labels('a')).toEqual(['R(restored) a/1=one a/2=two', 'C(live) a/3:x>three'])
    expect(run.errors()).toEqual([])
  })

  it('the same store, down at start: restored at once, then resumed when it is up', async () => {
    const { file } = await saved('persist_down')
    const writer = storeOn(server, 'persist_down')
    const three = await put(writer, 'a/3', 'three')
    await server.kill()

    const started = performance.now()
    const run = start(storeOn(server, 'persist_down'), file)
    await run.waitFor('the restored resync', (m) => m.type === 'event' && m.label.startsWith('R('))
    const took = performance.now() - started
    console.log(`restored while the server is down: in ${Math.round(took)} ms`)
    // A refused connection fails the first identity attempt at once.
    expect(took).toBeLessThan(2_000)
    expect(run.labels('a')).toEqual(['R(restored) a/1=one a/2=two'])
    await server.start()
    await run.waitFor('the change', (m) => m.type === 'event' && m.label === 'C(live) a/3:x>three')
    await run.saved(three)
    expect(run.labels('a')).toEqual(['R(restored) a/1=one a/2=two', 'C(live) a/3:x>three'])
    expect(run.errors()).toEqual([])
  })
})
