import type pg from 'pg'
import { NEVER, Observable, concat, defer, map, of, timeout } from 'rxjs'
import { asyncScheduler, type SchedulerLike } from 'rxjs'
import { toMillis, type Duration } from '../../core/duration.js'
import { CapabilityError, ConfigError } from '../../core/errors.js'
import type { KeyValue, StoreEvent } from '../../core/events.js'
import { revision, ZERO_REVISION, type Revision } from '../../core/revision.js'
import { matchesAny } from '../../core/snapshot.js'
import type { Capabilities, KvStore, WatchOptions } from '../../core/store.js'
import { argumentChecks, show, type ArgumentChecks } from '../../internal/checks.js'
import { StoreEdge } from '../../internal/edge.js'
import { compareKeys } from '../../internal/order.js'
import { WATCH_APPLICATION, clientConfig, createPool, onConnection } from './connection.js'
import { NAME, errorMapper } from './errors.js'
import { resolveConnection, type PostgresConnectionOptions } from './options.js'
import { Client } from './pg.js'
import { normalizePrefixes } from './sql.js'
import {
  ROWS,
  ROWS_CHANNEL,
  ROWS_META,
  installTriggers,
  primaryKey,
  readRowChanges,
  readRows,
  removeTriggers,
  sourceMeta,
  sourceTable,
} from './table-sql.js'
import { watchLog, type WatchContext } from './watch.js'

/** Options of {@link createPostgresTableSource}. */
export interface PostgresTableSourceOptions extends PostgresConnectionOptions {
  /** The application's table: `users` (schema `public`) or `app.users`. */
  readonly table: string
  /**
   * The columns whose values make a row's key, joined by `/` (a `/` or `%` inside a value is
   * written `%2F`, `%25`). @default the table's primary key
   */
  readonly keyColumns?: readonly string[]
  /** What every key starts with. @default the table name and a slash: `users/` */
  readonly keyPrefix?: string
  /** How often a watch reads the captured changes even without a notification. @default '5s' */
  readonly pollInterval?: Duration
  /** How long one read may take. @default '15s' */
  readonly operationTimeout?: Duration
  /** The longest pause between a watch's reconnection attempts. @default '2s' */
  readonly reconnectInterval?: Duration
  /** Where every timer runs. @default asyncScheduler */
  readonly scheduler?: SchedulerLike
}

/**
 * A read-only {@link KvStore} of an application's table: one key per row, the row as JSON
 * (`to_jsonb`) as the value, changes with the previous row as `prev`. The triggers that capture
 * changes are installed and removed only by {@link install} and {@link uninstall}.
 */
export interface PostgresTableSource extends KvStore {
  /** Installs the capture triggers (and the shared change log when missing). Idempotent. */
  install(): Observable<void>
  /** Removes the triggers and the captured changes of this table. Idempotent. */
  uninstall(): Observable<void>
  /** Removes captured changes up to `to` (default: all); a watch behind it relists. */
  compact(to?: Revision): Observable<{ readonly revision: Revision }>
}

const CAPABILITIES: Capabilities = Object.freeze({
  write: false,
  txn: false,
  ttl: false,
  nativePrev: true,
  resumable: true,
  atomicPrefixDelete: false,
})

/**
 * Watches the rows of an application's own table as key-values. Changes are captured by
 * triggers in the writing transaction (one revision per transaction, in commit order: writers of
 * the table serialize on the source's counter row while capture is installed), read after the
 * watch's last revision on each NOTIFY. A TRUNCATE makes watches relist (cause `rescan`).
 * Limits (schema changes, large tables, values JSON cannot hold exactly):
 * `src/backends/postgres/README.md`.
 *
 * @example
 * ```ts
 * import { createDatasync } from 'rx-datasync'
 * import { createPostgresTableSource, rowJson } from 'rx-datasync/postgres'
 * const users = createPostgresTableSource({ connectionString: process.env.DATABASE_URL, table: 'users' })
 * await lastValueFrom(users.install()) // once, at deployment: never done on start-up
 * const sync = createDatasync(users)
 * sync.register('users', { prefixes: ['users/'], codec: rowJson<{ id: number; name: string }>() })
 * ```
 *
 * @throws ConfigError naming the option when one is wrong.
 */
export function createPostgresTableSource(
  options: PostgresTableSourceOptions,
): PostgresTableSource {
  const source = `${NAME} table source options`
  const settings = resolveConnection(options, source)
  const fail =
    (field: string) =>
    (message: string): never => {
      throw new ConfigError(source, field, message)
    }
  const table = sourceTable(options.table, fail('table'))
  const name = `${NAME} table ${table.name}`
  const keyPrefix = options.keyPrefix ?? `${table.name.split('.')[1] ?? table.name}/`
  if (typeof keyPrefix !== 'string') fail('keyPrefix')('expected a string')
  const ms = (field: string, value: Duration | undefined, fallback: Duration) => {
    try {
      return toMillis(value ?? fallback, field)
    } catch (error) {
      return fail(field)(error instanceof Error ? error.message : String(error))
    }
  }
  const pollIntervalMs = ms('pollInterval', options.pollInterval, '5s')
  const operationTimeoutMs = ms('operationTimeout', options.operationTimeout, '15s')
  const reconnectIntervalMs = ms('reconnectInterval', options.reconnectInterval, '2s')
  const scheduler = options.scheduler ?? asyncScheduler
  const check: ArgumentChecks = argumentChecks({ backend: name, bytesOnly: true })
  const edge = new StoreEdge({ name, mapError: errorMapper(settings.where, settings.user ?? '') })
  let pool: pg.Pool | undefined
  const thePool = () => (pool ??= createPool(settings))

  /** The key columns: given, or the primary key (read once). */
  let columns: Promise<string[]> | undefined
  const keyColumns = (client: pg.ClientBase): Promise<string[]> => {
    if (options.keyColumns !== undefined) return Promise.resolve([...options.keyColumns])
    columns ??= primaryKey(client, table).catch((error: unknown) => {
      columns = undefined
      throw error
    })
    return columns
  }
  const nothing = () => Promise.resolve()
  const raw = <T>(fn: (client: pg.ClientBase) => Promise<T>) =>
    onConnection(thePool(), nothing, fn).pipe(timeout({ first: operationTimeoutMs, scheduler }))
  const run = <T>(what: string, fn: (client: pg.ClientBase) => Promise<T>): Observable<T> =>
    edge.op(what, () => raw(fn))

  /** Every row under `prefixes` at one revision (REPEATABLE READ). */
  const snapshot = (prefixes: readonly string[]) => async (client: pg.ClientBase) => {
    const keys = await keyColumns(client)
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    const { head } = await sourceMeta(client, table)
    const rows = await readRows(client, table, keys)
    await client.query('COMMIT')
    const encoder = new TextEncoder()
    const at = revision(head)
    const items: KeyValue<Uint8Array>[] = rows
      .map((row) => ({ key: keyPrefix + row.key, value: encoder.encode(row.row), revision: at }))
      .filter((item) => matchesAny(item.key, prefixes))
      .sort((a, b) => compareKeys(a.key, b.key))
    return { head, items }
  }

  const watchContext: WatchContext = {
    table: { name: table.name, log: ROWS, meta: ROWS_META, channel: ROWS_CHANNEL, bare: ROWS },
    scheduler,
    pollIntervalMs,
    reconnectIntervalMs,
    resyncAfterReconnect: false,
    listener: async () => {
      const client = new Client(clientConfig(settings, WATCH_APPLICATION))
      client.on('error', () => undefined)
      try {
        await client.connect()
        return client
      } catch (error) {
        await client.end().catch(() => undefined)
        throw error
      }
    },
    changes: (prefixes, from, window) =>
      defer(() => {
        edge.assertOpen()
        return raw((client) => readRowChanges(client, table, keyPrefix, prefixes, from, window))
      }),
    snapshot: (prefixes) =>
      defer(() => {
        edge.assertOpen()
        return raw(snapshot(prefixes))
      }),
    fail: (error, what, part) => edge.handle(error, what, part),
    part: () => edge.health.part(),
  }

  const readOnly = (operation: string) =>
    defer(() => {
      edge.assertOpen()
      throw new CapabilityError(name, 'writes', `${operation}: a table source is read-only`)
    })

  return {
    name,
    capabilities: CAPABILITIES,
    status$: edge.health.status$,

    install: () =>
      run('install', async (client) => {
        await installTriggers(client, table, await keyColumns(client))
      }),
    uninstall: () => run('uninstall', (client) => removeTriggers(client, table)),

    watch(
      prefixes: readonly string[],
      watchOptions?: WatchOptions,
    ): Observable<StoreEvent<Uint8Array>> {
      return edge.watch(
        defer(() => {
          check.prefixes(prefixes)
          const kept = normalizePrefixes(prefixes)
          if (kept.length === 0) {
            return concat(
              of<StoreEvent<Uint8Array>>({
                type: 'snapshot',
                revision: ZERO_REVISION,
                items: [],
                cause: 'startup',
              }),
              NEVER,
            )
          }
          return watchLog(watchContext, kept, watchOptions)
        }),
      )
    },

    get(key: string): Observable<KeyValue<Uint8Array> | undefined> {
      return defer(() => {
        check.key('get', key)
        return run(`get ${show(key)}`, snapshot([key])).pipe(
          map(({ items }) => items.find((item) => item.key === key)),
        )
      })
    },
    list(prefix: string): Observable<readonly KeyValue<Uint8Array>[]> {
      return defer(() => {
        check.prefix('list', prefix)
        return run(`list ${show(prefix)}`, snapshot([prefix])).pipe(map(({ items }) => items))
      })
    },
    listKeys(prefix: string): Observable<readonly string[]> {
      return this.list(prefix).pipe(map((items) => items.map((item) => item.key)))
    },
    put: () => readOnly('put'),
    delete: () => readOnly('delete'),
    txn: () => readOnly('txn'),

    compact(to?: Revision): Observable<{ readonly revision: Revision }> {
      return run('compact', async (client) => {
        await client.query('BEGIN')
        const { head } = await sourceMeta(client, table)
        const target = to === undefined || to > head ? head : to
        await client.query(`DELETE FROM ${ROWS} WHERE source = $1 AND revision <= $2`, [
          table.name,
          target.toString(),
        ])
        await client.query(
          `UPDATE ${ROWS_META} SET compacted = GREATEST(compacted, $2) WHERE source = $1`,
          [table.name, target.toString()],
        )
        await client.query('COMMIT')
        return { revision: revision(target) }
      })
    },

    async close(): Promise<void> {
      edge.close()
      await pool?.end().catch(() => undefined)
    },
  }
}
