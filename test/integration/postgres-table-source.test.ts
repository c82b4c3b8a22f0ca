/**
 * The PostgreSQL table source on a server of this file's own: rows of an application's table as
 * key-values, changes with prev and current rows through triggers installed and removed by
 * explicit calls; one transaction is one change event; a TRUNCATE relists; a value JavaScript
 * cannot hold exactly is a CodecError naming the table and the key.
 */
import { firstValueFrom, filter, lastValueFrom, type Subscription } from 'rxjs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  createPostgresTableSource,
  rowJson,
  type PostgresTableSource,
} from '../../src/backends/postgres/index.js'
import { CodecError, createDatasync, type StoreEvent } from '../../src/index.js'
import { recordConsumer } from '../../src/testing/index.js'
import { pollUntil } from '../servers/index.js'
import { startPostgres, type PostgresServer } from '../servers/postgres.js'

interface User {
  id: number
  name: string
  balance: number | null
}

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

/** A fresh application table `users_<n>` and a source on it (not installed). */
async function usersTable(): Promise<{ table: string; source: PostgresTableSource }> {
  tables++
  const table = `users_${tables}`
  await server.query(
    `CREATE TABLE ${table} (id integer PRIMARY KEY, name text NOT NULL, balance numeric)`,
  )
  const source = createPostgresTableSource({
    ...server.connection(),
    table,
    keyPrefix: 'users/',
    reconnectInterval: '300ms',
  })
  closers.push(() => source.close())
  return { table, source }
}

/** Runs statements in one transaction over one connection. */
async function inTransaction(...statements: string[]): Promise<void> {
  await server.query(['BEGIN', ...statements, 'COMMIT'].join(';\n'))
}

const decode = (raw: Uint8Array | undefined) =>
  raw === undefined ? undefined : (JSON.parse(new TextDecoder().decode(raw)) as User)

describe('postgres table source', { timeout: 90_000 }, () => {
  it('refuses to watch before install(), which it never does by itself', async () => {
    const { table, source } = await usersTable()
    const error = await lastValueFrom(source.watch(['users/'])).catch((e: unknown) => e)
    expect(String(error)).toMatch(/triggers are not installed; call install\(\)/)
    const triggers = await server.query(
      `SELECT tgname FROM pg_trigger WHERE tgrelid = '${table}'::regclass AND NOT tgisinternal`,
    )
    expect(triggers).toEqual([])
  })

  it('inserts, updates and deletes reach consumers with prev and current rows; one transaction is one event', async () => {
    const { table, source } = await usersTable()
    await server.query(`INSERT INTO ${table} VALUES (1, 'ann', 10), (2, 'bob', NULL)`)
    await lastValueFrom(source.install(), { defaultValue: undefined })
    const events: StoreEvent<Uint8Array>[] = []
    const subscription: Subscription = source
      .watch(['users/'])
      .subscribe((event) => events.push(event))
    closers.push(() => {
      subscription.unsubscribe()
    })
    const sync = createDatasync(source, { ackTimeout: '10s' })
    closers.push(() => {
      sync.close()
    })
    const recorder = recordConsumer(
      sync.register('users', { prefixes: ['users/'], codec: rowJson<User>() }),
    )
    sync.start()
    await firstValueFrom(sync.status$.pipe(filter((status) => status.state === 'in-sync')))
    expect(recorder.state.get('users/1')).toEqual({ id: 1, name: 'ann', balance: 10 })
    await pollUntil(() => events.length > 0, { description: 'the snapshot' })

    // Many transactions.
    await server.query(`UPDATE ${table} SET name = 'anne' WHERE id = 1`)
    await server.query(`INSERT INTO ${table} VALUES (3, 'cy', 5)`)
    await server.query(`DELETE FROM ${table} WHERE id = 2`)
    // One transaction: an insert, an update, a delete, and a row inserted then deleted.
    await inTransaction(
      `INSERT INTO ${table} VALUES (4, 'dee', 1)`,
      `UPDATE ${table} SET balance = 11 WHERE id = 1`,
      `DELETE FROM ${table} WHERE id = 3`,
      `INSERT INTO ${table} VALUES (9, 'tmp', 0)`,
      `DELETE FROM ${table} WHERE id = 9`,
    )
    await recorder.until((state) => state.has('users/4') && !state.has('users/3'), 30_000)
    expect(recorder.violations).toEqual([])
    // The raw watch is a watch of its own: wait for its fourth transaction too.
    await pollUntil(() => events.filter((event) => event.type === 'changes').length >= 4, {
      description: 'four change events on the raw watch',
    })
    const changes = events.filter((event) => event.type === 'changes')
    expect(changes).toHaveLength(4)
    const [rename, insert, remove, batch] = changes.map((event) =>
      event.type === 'changes'
        ? event.changes.map((change) => ({
            op: change.op,
            key: change.key,
            prev: decode(change.prev),
            value: change.op === 'put' ? decode(change.value) : undefined,
          }))
        : [],
    )
    expect(rename).toEqual([
      {
        op: 'put',
        key: 'users/1',
        prev: { id: 1, name: 'ann', balance: 10 },
        value: { id: 1, name: 'anne', balance: 10 },
      },
    ])
    expect(insert).toEqual([
      { op: 'put', key: 'users/3', prev: undefined, value: { id: 3, name: 'cy', balance: 5 } },
    ])
    expect(remove).toEqual([
      {
        op: 'delete',
        key: 'users/2',
        prev: { id: 2, name: 'bob', balance: null },
        value: undefined,
      },
    ])
    expect(batch).toEqual([
      { op: 'put', key: 'users/4', prev: undefined, value: { id: 4, name: 'dee', balance: 1 } },
      {
        op: 'put',
        key: 'users/1',
        prev: { id: 1, name: 'anne', balance: 10 },
        value: { id: 1, name: 'anne', balance: 11 },
      },
      { op: 'delete', key: 'users/3', prev: { id: 3, name: 'cy', balance: 5 }, value: undefined },
    ])
    // Revisions: one per transaction, in order.
    const revisions = changes.map((event) => event.revision)
    expect(revisions).toEqual([...revisions].sort((a, b) => (a < b ? -1 : 1)))
    // The consumer holds exactly the table.
    const rows = await lastValueFrom(source.list('users/'))
    expect([...recorder.state.keys()].sort()).toEqual(rows.map((row) => row.key))
  })

  it('a value JavaScript cannot hold exactly is a CodecError naming the table and the key', async () => {
    const { table, source } = await usersTable()
    await lastValueFrom(source.install(), { defaultValue: undefined })
    const sync = createDatasync(source, { ackTimeout: '10s' })
    closers.push(() => {
      sync.close()
    })
    const errors: CodecError[] = []
    sync.errors$.subscribe((error) => {
      if (error instanceof CodecError) errors.push(error)
    })
    const recorder = recordConsumer(
      sync.register('users', { prefixes: ['users/'], codec: rowJson<User>() }),
    )
    sync.start()
    await firstValueFrom(sync.status$.pipe(filter((status) => status.state === 'in-sync')))
    await server.query(`INSERT INTO ${table} VALUES (7, 'rich', 12345678901234567890)`)
    await server.query(`INSERT INTO ${table} VALUES (8, 'fine', 1.5)`)
    await recorder.until((state) => state.has('users/8'), 30_000)
    expect(recorder.state.has('users/7')).toBe(false)
    expect(errors.map((error) => error.key)).toEqual(['users/7'])
    expect(errors[0]?.message).toContain(`public.${table}`)
    expect(errors[0]?.message).toContain('users/7')
    expect(errors[0]?.message).toContain('column "balance" holds 12345678901234567890')
  })

  it('a TRUNCATE relists; a composite key joins its columns; uninstall() removes the triggers', async () => {
    tables++
    const table = `pairs_${tables}`
    await server.query(`CREATE TABLE ${table} (a text, b integer, v text, PRIMARY KEY (a, b))`)
    const source = createPostgresTableSource({ ...server.connection(), table })
    closers.push(() => source.close())
    await lastValueFrom(source.install(), { defaultValue: undefined })
    const events: StoreEvent<Uint8Array>[] = []
    const subscription = source.watch([`${table}/`]).subscribe((event) => events.push(event))
    closers.push(() => {
      subscription.unsubscribe()
    })
    await pollUntil(() => events.length > 0, { description: 'the snapshot' })
    await server.query(`INSERT INTO ${table} VALUES ('x/y', 1, 'one')`)
    await pollUntil(() => events.length > 1, { description: 'the insert' })
    expect(events[1]).toMatchObject({
      type: 'changes',
      changes: [{ op: 'put', key: `${table}/x%2Fy/1` }],
    })
    await server.query(`TRUNCATE ${table}`)
    await server.query(`INSERT INTO ${table} VALUES ('z', 2, 'two')`)
    await pollUntil(
      () => events.some((event) => event.type === 'snapshot' && event.cause === 'rescan'),
      {
        description: 'a rescan snapshot',
      },
    )
    // From the rescan on, the events add up to the table: the truncated row is gone.
    const keysAfterRescan = () => {
      const keys = new Set<string>()
      const from = events.findIndex(
        (event) => event.type === 'snapshot' && event.cause === 'rescan',
      )
      for (const event of events.slice(from)) {
        if (event.type === 'snapshot') for (const item of event.items) keys.add(item.key)
        else
          for (const change of event.changes) {
            if (change.op === 'put') keys.add(change.key)
            else keys.delete(change.key)
          }
      }
      return [...keys]
    }
    await pollUntil(() => keysAfterRescan().join() === `${table}/z/2`, {
      description: 'the rows after the truncate',
    })
    await lastValueFrom(source.uninstall(), { defaultValue: undefined })
    const triggers = await server.query(
      `SELECT tgname FROM pg_trigger WHERE tgrelid = '${table}'::regclass AND NOT tgisinternal`,
    )
    expect(triggers).toEqual([])
    await expect(lastValueFrom(source.put(`${table}/q`, new Uint8Array()))).rejects.toThrow(
      /read-only/,
    )
  })
})
