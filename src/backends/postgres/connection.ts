import type pg from 'pg'
import { Observable } from 'rxjs'
import type { ConnectionSettings } from './options.js'
import { Client, Pool } from './pg.js'

/** The `application_name` of the store's pooled connections. */
export const POOL_APPLICATION = 'rx-datasync'
/** The `application_name` of a watch's LISTEN connection (one per watch). */
export const WATCH_APPLICATION = 'rx-datasync-watch'

/**
 * The `pg` client configuration of the settings. A connection URL is parsed here (not by `pg`,
 * which would let it override the separate fields): the fields win over the URL, the URL over
 * the defaults (127.0.0.1:5432, user and database `postgres`). `sslmode=require` (or
 * `verify-ca`, `verify-full`) in the URL turns TLS on; `sslmode=disable` keeps it off.
 */
export function clientConfig(
  settings: ConnectionSettings,
  applicationName: string,
): pg.ClientConfig {
  const url =
    settings.connectionString === undefined ? undefined : new URL(settings.connectionString)
  const decoded = (text: string | undefined) =>
    text === undefined || text === '' ? undefined : decodeURIComponent(text)
  const sslmode = url?.searchParams.get('sslmode') ?? undefined
  const tls = settings.tls
  const ssl: pg.ClientConfig['ssl'] =
    tls !== undefined
      ? {
          ...(tls.ca === undefined ? {} : { ca: toText(tls.ca) }),
          ...(tls.cert === undefined ? {} : { cert: toText(tls.cert) }),
          ...(tls.key === undefined ? {} : { key: toText(tls.key) }),
          rejectUnauthorized: tls.insecureSkipVerify !== true,
        }
      : sslmode === 'require'
        ? { rejectUnauthorized: false }
        : sslmode === 'verify-ca' || sslmode === 'verify-full'
          ? { rejectUnauthorized: true }
          : false
  return {
    host: settings.host ?? decoded(url?.hostname.replace(/^\[|\]$/g, '')) ?? '127.0.0.1',
    port: settings.port ?? (url?.port ? Number(url.port) : 5432),
    database: settings.database ?? decoded(url?.pathname.slice(1)) ?? 'postgres',
    user: settings.user ?? decoded(url?.username) ?? 'postgres',
    ...(settings.password !== undefined || url?.password
      ? { password: settings.password ?? decoded(url?.password) }
      : {}),
    ssl,
    statement_timeout: settings.statementTimeoutMs,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    keepAlive: true,
    application_name: applicationName,
  }
}

function toText(value: string | Uint8Array): string {
  return typeof value === 'string' ? value : Buffer.from(value).toString('utf8')
}

/**
 * A pool client that never throws a connection error as an event: pg-pool leaves a client
 * without an 'error' listener while it connects, hands it out, or ends it after a broken release,
 * and a killed server's FATAL arriving then would be an uncaught exception that ends the process.
 * The error still fails the client's next query, which is where it is handled.
 */
class QuietClient extends Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config)
    this.on('error', () => undefined)
  }
}

/** The store's pool; an idle connection that breaks is dropped, not thrown. */
export function createPool(settings: ConnectionSettings): pg.Pool {
  const pool = new Pool({
    Client: QuietClient,
    ...clientConfig(settings, POOL_APPLICATION),
    max: settings.poolSize,
    idleTimeoutMillis: 10_000,
  })
  pool.on('error', () => undefined)
  return pool
}

/**
 * Runs `fn` on a connection of `pool` as a cold Observable: `prepare` first (the schema check),
 * then `fn`, then the connection goes back. A connection that met an error, or whose work was
 * unsubscribed (a timeout), is destroyed rather than reused: it may be inside a transaction or
 * waiting for an answer.
 */
export function onConnection<T>(
  pool: pg.Pool,
  prepare: (client: pg.PoolClient) => Promise<void>,
  fn: (client: pg.PoolClient) => Promise<T>,
): Observable<T> {
  return new Observable<T>((subscriber) => {
    let client: pg.PoolClient | undefined
    let released = false
    let settled = false
    // A connection error that arrives between two queries is emitted, not thrown: kept here (the
    // next query fails with it) so that it never becomes an uncaught exception.
    const ignore = () => undefined
    const release = (broken?: Error) => {
      if (client === undefined || released) return
      released = true
      client.off('error', ignore)
      client.release(broken ?? false)
    }
    void (async () => {
      try {
        client = await pool.connect()
        client.on('error', ignore)
        if (subscriber.closed) {
          release()
          return
        }
        await prepare(client)
        const value = await fn(client)
        settled = true
        release()
        subscriber.next(value)
        subscriber.complete()
      } catch (error) {
        settled = true
        release(error instanceof Error ? error : new Error(String(error)))
        subscriber.error(error)
      }
    })()
    return () => {
      if (!settled) release(new Error('cancelled'))
    }
  })
}
