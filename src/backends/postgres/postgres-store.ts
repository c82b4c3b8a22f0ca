import type pg from 'pg'
import {
  EMPTY,
  NEVER,
  Observable,
  catchError,
  concat,
  defer,
  exhaustMap,
  ignoreElements,
  map,
  merge,
  of,
  share,
  timeout,
  timer,
} from 'rxjs'
import type { KeyValue, StoreEvent } from '../../core/events.js'
import { revision, ZERO_REVISION, type Revision } from '../../core/revision.js'
import type {
  Capabilities,
  DeleteOptions,
  PutOptions,
  StoreStatus,
  TxnOp,
  TxnOptions,
  TxnResult,
  WatchOptions,
} from '../../core/store.js'
import { argumentChecks, show, type ArgumentChecks } from '../../internal/checks.js'
import { StoreEdge } from '../../internal/edge.js'
import { WATCH_APPLICATION, clientConfig, createPool, onConnection } from './connection.js'
import { NAME, errorMapper } from './errors.js'
import {
  resolveOptions,
  type PostgresStore,
  type PostgresStoreOptions,
  type TableName,
} from './options.js'
import { Client } from './pg.js'
import {
  RAW_TYPES,
  ensureSchema,
  inKeyOrder,
  keyProblem,
  keyValues,
  listPrefix,
  normalizePrefixes,
  readMeta,
  LIVE,
} from './sql.js'
import { readKvChanges, watchLog, type WatchContext } from './watch.js'
import { compactLog, reapExpired, runWrites, type Outcome, type Write } from './writes.js'

const CAPABILITIES: Capabilities = Object.freeze({
  write: true,
  txn: true,
  ttl: true,
  // The log keeps the row each write replaced: a change's prev is read with it.
  nativePrev: true,
  // A watch resumes after its last revision while the log holds the history.
  resumable: true,
  atomicPrefixDelete: true,
})

const check: ArgumentChecks = argumentChecks({ backend: NAME, keyProblem, bytesOnly: true })

/**
 * Creates a store over one PostgreSQL log table (created when missing): every write appends rows
 * at a revision allocated under one row lock, so revisions are gap-free and committed in order;
 * a watch wakes on LISTEN/NOTIFY and reads the log after its last revision, so nothing is lost
 * with a notification or a connection. Nothing connects until something is subscribed. The
 * schema, the ordering and its cost, TTLs and compaction: `src/backends/postgres/README.md`.
 *
 * ```
 * watch(['cfg/']):  S(R)--c--c--x(connection lost)....c(resumed after its revision)--S(compacted)--
 * status$:          connecting--ready----degraded------ready-----------------------------------
 * ```
 *
 * @example
 * ```ts
 * import { createDatasync, json } from 'rx-datasync'
 * import { createPostgresStore } from 'rx-datasync/postgres'
 * const store = createPostgresStore({ connectionString: 'postgres://app@db:5432/app' })
 * const sync = createDatasync(store)
 * ```
 *
 * @throws ConfigError naming the option when one is wrong.
 */
export function createPostgresStore(options: PostgresStoreOptions = {}): PostgresStore {
  const settings = resolveOptions(options)
  const { scheduler, table } = settings
  const user = clientConfig(settings, '').user ?? 'postgres'
  const mapError = errorMapper(settings.where, user)
  const edge = new StoreEdge({ name: NAME, mapError })
  let pool: pg.Pool | undefined
  const thePool = () => (pool ??= createPool(settings))

  /** Whether the schema was checked (once per store; a failure is tried again next time). */
  let schemaReady: Promise<void> | undefined
  const prepare = (client: pg.ClientBase): Promise<void> => {
    schemaReady ??= ensureSchema(client, table).catch((error: unknown) => {
      schemaReady = undefined
      throw error
    })
    return schemaReady
  }

  /** `fn` on a pooled connection, through the edge, bounded by the operation timeout. */
  const run = <T>(what: string, fn: (client: pg.ClientBase) => Promise<T>): Observable<T> =>
    edge.op(what, () =>
      onConnection(thePool(), prepare, fn).pipe(
        timeout({ first: settings.operationTimeoutMs, scheduler }),
      ),
    )

  const write = (what: string, writes: readonly Write[], txnOptions?: TxnOptions<Uint8Array>) =>
    run(what, (client) => runWrites(client, table, writes, txnOptions?.conditions ?? []))

  /** The prefixes' live keys at one revision: one REPEATABLE READ transaction. */
  const snapshotOf = (prefixes: readonly string[]) => async (client: pg.ClientBase) => {
    const head = await beginReadOnly(client, table)
    const items: KeyValue<Uint8Array>[] = []
    for (const prefix of normalizePrefixes(prefixes)) {
      await listPrefix(client, table, prefix, settings.pageSize, false, items)
    }
    await client.query('COMMIT')
    return { head, items: inKeyOrder(items) }
  }

  // The TTL reaper and the periodic compaction run while anything holds them (a watch, status$).
  // The first reap waits one interval: a key that expired before is in no listing already, and a
  // watch's first listing has the server to itself.
  let seen: bigint | undefined
  const background$ = merge(
    timer(settings.reapIntervalMs, settings.reapIntervalMs, scheduler).pipe(
      exhaustMap(() =>
        run('expire keys', (client) => reapExpired(client, table)).pipe(catchError(() => EMPTY)),
      ),
    ),
    settings.autoCompactMs > 0
      ? timer(settings.autoCompactMs, settings.autoCompactMs, scheduler).pipe(
          exhaustMap(() => {
            const to = seen
            return run('compact', async (client) => {
              seen = (await readMeta(client, table)).head
              return to === undefined ? 0n : compactLog(client, table, to)
            }).pipe(catchError(() => EMPTY))
          }),
        )
      : EMPTY,
  ).pipe(ignoreElements(), share())

  const status$ = new Observable<StoreStatus>((subscriber) => {
    const subscription = edge.health.status$.subscribe(subscriber)
    if (!edge.closed) subscription.add(background$.subscribe())
    return subscription
  })

  const watchContext: WatchContext = {
    table,
    scheduler,
    pollIntervalMs: settings.pollIntervalMs,
    reconnectIntervalMs: settings.reconnectIntervalMs,
    resyncAfterReconnect: settings.resyncAfterReconnect,
    listener: async () => {
      const client = new Client(clientConfig(settings, WATCH_APPLICATION))
      client.on('error', () => undefined)
      try {
        await client.connect()
        await prepare(client)
        return client
      } catch (error) {
        await client.end().catch(() => undefined)
        throw error
      }
    },
    changes: (prefixes, from, window) =>
      defer(() => {
        edge.assertOpen()
        return onConnection(thePool(), prepare, (client) =>
          readKvChanges(client, table, prefixes, from, window),
        ).pipe(timeout({ first: settings.operationTimeoutMs, scheduler }))
      }),
    snapshot: (prefixes) =>
      defer(() => {
        edge.assertOpen()
        return onConnection(thePool(), prepare, snapshotOf(prefixes)).pipe(
          timeout({ first: settings.operationTimeoutMs, scheduler }),
        )
      }),
    fail: (raw, what, part) => edge.handle(raw, what, part),
    part: () => edge.health.part(),
  }

  let closing: Promise<void> | undefined

  return {
    name: NAME,
    capabilities: CAPABILITIES,
    status$,

    // Another server (its system identifier), another database, or the table dropped and made
    // again (new oids): another store, whose revisions say nothing about this one's.
    identity: () =>
      run('read the store identity', async (client) => {
        const result = await client.query<{ system: string; database: string; oids: string }>(
          `SELECT (SELECT system_identifier::text FROM pg_control_system()) AS system,
             current_database() AS database,
             $1::text::regclass::oid || '/' || $2::text::regclass::oid AS oids`,
          [table.log, table.meta],
        )
        const row = result.rows[0]
        if (row === undefined) throw new Error('the identity query returned no row')
        return `postgres system ${row.system} database ${row.database} table ${table.name} (oids ${row.oids})`
      }),

    watch(
      prefixes: readonly string[],
      watchOptions?: WatchOptions,
    ): Observable<StoreEvent<Uint8Array>> {
      return edge.watch(
        defer(() => {
          check.prefixes(prefixes)
          const after = watchOptions?.after
          if (after !== undefined && typeof after !== 'bigint') {
            throw new TypeError(
              `${NAME} watch: after: expected a Revision (bigint), got ${show(after)}`,
            )
          }
          const kept = normalizePrefixes(prefixes)
          if (kept.length === 0) {
            const empty: StoreEvent<Uint8Array> = {
              type: 'snapshot',
              revision: ZERO_REVISION,
              items: [],
              cause: 'startup',
            }
            return concat(of(empty), NEVER)
          }
          return merge(watchLog(watchContext, kept, watchOptions), background$)
        }),
      )
    },

    get(key: string): Observable<KeyValue<Uint8Array> | undefined> {
      const what = `get ${show(key)}`
      return defer(() => {
        check.key('get', key)
        return run(what, async (client) => {
          const result = await client.query<[string, Uint8Array, string]>({
            text: `SELECT key, value, revision FROM ${table.log} WHERE key = $1 AND ${LIVE}`,
            values: [key],
            rowMode: 'array',
            types: RAW_TYPES,
          })
          return keyValues(result.rows)[0]
        })
      })
    },

    list(prefix: string): Observable<readonly KeyValue<Uint8Array>[]> {
      return defer(() => {
        check.prefix('list', prefix)
        return run(`list ${show(prefix)}`, snapshotOf([prefix])).pipe(map(({ items }) => items))
      })
    },

    listKeys(prefix: string): Observable<readonly string[]> {
      return defer(() => {
        check.prefix('listKeys', prefix)
        return run(`list the keys of ${show(prefix)}`, async (client) =>
          inKeyOrder(await listPrefix(client, table, prefix, settings.pageSize, true)).map(
            (item) => item.key,
          ),
        )
      })
    },

    put(key: string, value: Uint8Array, putOptions?: PutOptions): Observable<void> {
      return defer(() => {
        check.key('put', key)
        check.value('put', key, value)
        const ttl = putOptions?.ttl
        const put: Write =
          ttl === undefined
            ? { op: 'put', key, value }
            : { op: 'put', key, value, ttl: check.ttlMs('put', ttl) }
        return write(`put ${show(key)}`, [put]).pipe(map(() => undefined))
      })
    },

    delete(key: string, deleteOptions?: DeleteOptions): Observable<{ readonly deleted: number }> {
      const prefix = deleteOptions?.prefix === true
      return defer(() => {
        if (prefix) check.prefix('delete', key)
        else check.key('delete', key)
        const what = `delete ${prefix ? 'every key under ' : ''}${show(key)}`
        return write(what, [{ op: 'delete', key, prefix }]).pipe(
          map((outcome) => ({ deleted: outcome.deleted })),
        )
      })
    },

    txn(
      ops: readonly TxnOp<Uint8Array>[],
      txnOptions?: TxnOptions<Uint8Array>,
    ): Observable<TxnResult> {
      return defer(() => {
        const writes = check.writes(ops, (what, ttl) => check.ttlMs(what, ttl))
        check.conditions(txnOptions?.conditions ?? [])
        return write(`transaction of ${writes.length} operations`, writes, txnOptions).pipe(
          map((outcome: Outcome) => ({
            succeeded: outcome.succeeded,
            revision: revision(outcome.revision),
          })),
        )
      })
    },

    compact(to?: Revision): Observable<{ readonly revision: Revision }> {
      return defer(() => {
        if (to !== undefined && typeof to !== 'bigint') {
          throw new TypeError(`${NAME} compact: expected a Revision (bigint), got ${show(to)}`)
        }
        return run('compact', (client) => compactLog(client, table, to)).pipe(
          map((at) => ({ revision: revision(at) })),
        )
      })
    },

    close(): Promise<void> {
      closing ??= (async () => {
        edge.close()
        await pool?.end().catch(() => undefined)
      })()
      return closing
    },
  }
}

/**
 * Begins a READ ONLY REPEATABLE READ transaction (every read in it sees one revision) and reads
 * the revision it sees, in one round trip; the caller commits.
 */
async function beginReadOnly(client: pg.ClientBase, table: TableName): Promise<bigint> {
  const results = (await client.query(
    `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT revision FROM ${table.meta} WHERE id = 1`,
  )) as unknown as [pg.QueryResult, pg.QueryResult<{ revision: string }>]
  const row = results[1].rows[0]
  if (row === undefined) throw new Error(`${table.meta} has no meta row`)
  return BigInt(row.revision)
}
