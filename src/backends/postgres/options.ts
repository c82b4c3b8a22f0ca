import { asyncScheduler, type Observable, type SchedulerLike } from 'rxjs'
import type { Duration } from '../../core/duration.js'
import { ConfigError } from '../../core/errors.js'
import { optionChecks } from '../../internal/checks.js'
import type { Revision } from '../../core/revision.js'
import type { KvStore } from '../../core/store.js'
import { NAME } from './errors.js'

/** TLS towards the server (node's `tls.connect` options, as `pg` takes them). */
export interface PostgresTlsOptions {
  /** PEM of the CA that signed the server's certificate. @default the system's CAs */
  readonly ca?: string | Uint8Array
  /** PEM of a client certificate, for `clientcert` in pg_hba.conf. @default none */
  readonly cert?: string | Uint8Array
  /** PEM of the client certificate's key; required with `cert`. @default none */
  readonly key?: string | Uint8Array
  /** Accept any server certificate. For tests only. @default false */
  readonly insecureSkipVerify?: boolean
}

/** How to reach PostgreSQL: what the store, the table source and the config loader share. */
export interface PostgresConnectionOptions {
  /**
   * A connection URL, `postgres://user:password@host:port/database?sslmode=require`. The
   * separate fields below override what it says.
   * @default none
   */
  readonly connectionString?: string
  /** @default '127.0.0.1' (or the URL's host) */
  readonly host?: string
  /** @default 5432 (or the URL's port) */
  readonly port?: number
  /** @default 'postgres' */
  readonly database?: string
  /** @default 'postgres' */
  readonly user?: string
  /** @default none (trust, peer, or the URL's password) */
  readonly password?: string
  /** TLS; absent means plain text unless the URL asks for it. @default none */
  readonly tls?: PostgresTlsOptions
  /** How many connections the store's pool holds at most (watches hold one each besides). @default 10 */
  readonly poolSize?: number
  /** The server-side `statement_timeout` of every statement. @default '10s' */
  readonly statementTimeout?: Duration
  /** How long a connection attempt may take. @default '5s' */
  readonly connectTimeout?: Duration
}

/** Options of {@link createPostgresStore}. */
export interface PostgresStoreOptions extends PostgresConnectionOptions {
  /**
   * The log table (created when missing, with `<table>_meta` beside it): a name of lower-case
   * letters, digits and underscores, optionally `schema.name`. Two stores on one table share
   * their data; a table of another schema version is refused, never changed.
   * @default 'rx_datasync_kv'
   */
  readonly table?: string
  /**
   * How often a watch reads the log even without a notification (a lost NOTIFY then costs at
   * most this much delay, never a change).
   * @default '5s'
   */
  readonly pollInterval?: Duration
  /** How often the TTL reaper looks for expired keys while the store is in use. @default '500ms' */
  readonly reapInterval?: Duration
  /** How long one operation (a read, a transaction) may take end to end. @default '15s' */
  readonly operationTimeout?: Duration
  /** The longest pause between a watch's reconnection attempts. @default '2s' */
  readonly reconnectInterval?: Duration
  /** Relist (a `reconnect` snapshot) after every reconnection instead of resuming. @default false */
  readonly resyncAfterReconnect?: boolean
  /**
   * Compacts the log periodically while the store is in use: every period, to the revision seen
   * one period earlier. 0 turns it off.
   * @default 0 (off)
   */
  readonly autoCompact?: Duration
  /** The most rows one page of a listing reads. @default 5000 */
  readonly pageSize?: number
  /** Where every timer runs. @default asyncScheduler */
  readonly scheduler?: SchedulerLike
}

/** The store {@link createPostgresStore} returns: a {@link KvStore} of bytes with `compact`. */
export interface PostgresStore extends KvStore {
  /**
   * Removes history up to `to` (default: the current revision): rows a later write replaced,
   * and delete markers. A watch that was away since before `to` relists when it comes back.
   */
  compact(to?: Revision): Observable<{ readonly revision: Revision }>
}

/** The connection settings, checked. */
export interface ConnectionSettings {
  readonly connectionString: string | undefined
  readonly host: string | undefined
  readonly port: number | undefined
  readonly database: string | undefined
  readonly user: string | undefined
  readonly password: string | undefined
  readonly tls: PostgresTlsOptions | undefined
  readonly poolSize: number
  readonly statementTimeoutMs: number
  readonly connectTimeoutMs: number
  /** `host:port/database` for messages. */
  readonly where: string
}

/** The store's options, checked, with defaults. */
export interface Settings extends ConnectionSettings {
  readonly table: TableName
  readonly pollIntervalMs: number
  readonly reapIntervalMs: number
  readonly operationTimeoutMs: number
  readonly reconnectIntervalMs: number
  readonly resyncAfterReconnect: boolean
  readonly autoCompactMs: number
  readonly pageSize: number
  readonly scheduler: SchedulerLike
}

/** A checked table name, quoted for SQL, and the channel its writes notify. */
export interface TableName {
  /** As given: `rx_datasync_kv` or `app.rx_datasync_kv`. */
  readonly name: string
  /** The log table, quoted: `"app"."rx_datasync_kv"`. */
  readonly log: string
  /** The meta table, quoted: `"app"."rx_datasync_kv_meta"`. */
  readonly meta: string
  /** The LISTEN/NOTIFY channel. */
  readonly channel: string
  /** A prefix for index names. */
  readonly bare: string
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,40}$/

/** Checks a table name (`name` or `schema.name`) and quotes it. */
export function tableName(value: unknown, fail: (message: string) => never): TableName {
  if (typeof value !== 'string') return fail(`expected a table name, got ${typeof value}`)
  const parts = value.split('.')
  if (parts.length > 2 || !parts.every((part) => IDENTIFIER.test(part))) {
    return fail(
      `expected a name of lower-case letters, digits and underscores (at most 41), optionally schema.name, got ${JSON.stringify(value)}`,
    )
  }
  const bare = parts.at(-1) ?? value
  const schema = parts.length === 2 ? `"${parts[0]}".` : ''
  return {
    name: value,
    log: `${schema}"${bare}"`,
    meta: `${schema}"${bare}_meta"`,
    channel: `${value.replace('.', '__')}_changes`,
    bare,
  }
}

/**
 * Checks the connection options and fills in defaults.
 * @throws ConfigError naming `source` and the field.
 */
export function resolveConnection(
  options: PostgresConnectionOptions,
  source: string,
): ConnectionSettings {
  if (typeof options !== 'object' || (options as unknown) === null) {
    throw new ConfigError(source, undefined, `expected an options object, got ${typeof options}`)
  }
  const { fail, positive: duration, ...checks } = optionChecks(source)
  const text = (field: keyof PostgresConnectionOptions): string | undefined =>
    checks.text(field, options[field])
  const connectionString = text('connectionString')
  let url: URL | undefined
  if (connectionString !== undefined) {
    try {
      url = new URL(connectionString)
    } catch {
      fail('connectionString', 'expected a URL such as postgres://user@host:5432/database')
    }
    if (url?.protocol !== 'postgres:' && url?.protocol !== 'postgresql:') {
      fail('connectionString', `expected a postgres:// or postgresql:// URL, got ${url?.protocol}`)
    }
  }
  const port = options.port
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65_535)) {
    fail('port', `expected a port from 1 to 65535, got ${JSON.stringify(port)}`)
  }
  const poolSize = options.poolSize ?? 10
  if (!Number.isInteger(poolSize) || poolSize < 1) {
    fail('poolSize', `expected a whole number of at least 1, got ${JSON.stringify(poolSize)}`)
  }
  const tls = options.tls
  if (tls !== undefined) {
    if (typeof tls !== 'object' || (tls as unknown) === null) fail('tls', 'expected an object')
    if ((tls.cert === undefined) !== (tls.key === undefined)) {
      fail(
        tls.cert === undefined ? 'tls.cert' : 'tls.key',
        'a client certificate needs both cert and key',
      )
    }
  }
  const host = text('host')
  const database = text('database')
  const shownHost = host ?? (url?.hostname || '127.0.0.1')
  const shownPort = port ?? (url?.port ? Number(url.port) : 5432)
  const shownDb = database ?? (url?.pathname.slice(1) || 'postgres')
  return {
    connectionString,
    host,
    port,
    database,
    user: text('user'),
    password: options.password,
    tls,
    poolSize,
    statementTimeoutMs: duration('statementTimeout', options.statementTimeout, '10s'),
    connectTimeoutMs: duration('connectTimeout', options.connectTimeout, '5s'),
    where: `${shownHost}:${shownPort}/${shownDb}`,
  }
}

/**
 * Checks the store's options and fills in the defaults.
 * @throws ConfigError naming the field.
 */
export function resolveOptions(
  options: PostgresStoreOptions,
  source = `${NAME} store options`,
): Settings {
  const connection = resolveConnection(options, source)
  const { fail, duration, positive } = optionChecks(source)
  const pageSize = options.pageSize ?? 5000
  if (!Number.isInteger(pageSize) || pageSize < 1) {
    fail('pageSize', `expected a whole number of at least 1, got ${JSON.stringify(pageSize)}`)
  }
  const resync: unknown = options.resyncAfterReconnect
  if (resync !== undefined && typeof resync !== 'boolean') {
    fail('resyncAfterReconnect', `expected a boolean, got ${JSON.stringify(resync)}`)
  }
  return {
    ...connection,
    table: tableName(options.table ?? 'rx_datasync_kv', (message) => fail('table', message)),
    pollIntervalMs: positive('pollInterval', options.pollInterval, '5s'),
    reapIntervalMs: positive('reapInterval', options.reapInterval, '500ms'),
    operationTimeoutMs: positive('operationTimeout', options.operationTimeout, '15s'),
    reconnectIntervalMs: positive('reconnectInterval', options.reconnectInterval, '2s'),
    resyncAfterReconnect: resync === true,
    autoCompactMs: duration('autoCompact', options.autoCompact, 0),
    pageSize,
    scheduler: options.scheduler ?? asyncScheduler,
  }
}
