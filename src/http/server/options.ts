import { asyncScheduler, type SchedulerLike } from 'rxjs'
import { toMillis, type Duration } from '../../core/duration.js'

/** What one bearer token may do: read and write keys under these prefixes. */
export interface HttpTokenGrant {
  /** Prefixes the token may read (get, list, listKeys, watch, txn conditions). @default none */
  readonly read?: readonly string[]
  /** Prefixes the token may write (put, delete, txn operations). @default none */
  readonly write?: readonly string[]
}

/** TLS of the server: PEM strings or buffers (node:https options). */
export interface HttpServerTls {
  readonly cert: string | Buffer
  readonly key: string | Buffer
  /** CA bundle, for client certificates with `requestCert`. */
  readonly ca?: string | Buffer
  /** Ask clients for a certificate signed by `ca` (refused without one). @default false */
  readonly requestCert?: boolean
}

/** Which browser origins may call the server (CORS). */
export interface HttpCorsOptions {
  /** Allowed origins, e.g. `['http://localhost:5173']`, or `'*'` for any. */
  readonly origins: readonly string[] | '*'
  /** How long a browser may cache a preflight answer. @default '10m' */
  readonly maxAge?: Duration
}

/** Options of {@link serveStore}. */
export interface HttpServerOptions {
  /** The TCP port; 0 picks a free one (read it from `server.port`). @default 0 */
  readonly port?: number
  /** The address to listen on. @default '127.0.0.1' (loopback only) */
  readonly host?: string
  /** Serve HTTPS with this certificate. @default plain HTTP */
  readonly tls?: HttpServerTls
  /**
   * Bearer tokens and what each may read and write. Absent: no authentication, everyone reads
   * and writes everything served. Present: a request without a known token gets 401.
   */
  readonly tokens?: Readonly<Record<string, HttpTokenGrant>>
  /** CORS for browser apps on other origins. @default no CORS headers (same origin only) */
  readonly cors?: HttpCorsOptions
  /** The key prefixes served (one upstream watch covers them all). @default [''] (everything) */
  readonly prefixes?: readonly string[]
  /** The largest request body, in bytes: larger ones get 413. @default 1 MiB */
  readonly maxBodyBytes?: number
  /** The most watch streams open at once: more get 503 (code `busy`). @default 10_000 */
  readonly maxClients?: number
  /**
   * The most bytes a watch client may have waiting to be sent (in Node's buffers and the
   * snapshot queue): past it the client is cut; it resumes (or relists) when it reconnects, and
   * the others are never slowed. @default 4 MiB
   */
  readonly maxBufferedBytes?: number
  /** Change batches kept for clients that resume with Last-Event-ID. @default 10_000 */
  readonly historySize?: number
  /** Items per snapshot chunk. @default 500 */
  readonly snapshotChunk?: number
  /**
   * How often an idle stream gets a heartbeat (and its resume position): at each tick, a stream
   * that was written nothing since the previous one. A busy stream gets none: its data keeps it
   * alive, and the server writes no more to it. @default '15s'
   */
  readonly heartbeat?: Duration
  /**
   * A new watch's snapshot reflects every write completed before it was asked for: the hub
   * reads the store's current revision (an empty `txn`) and waits until its upstream watch has
   * delivered it, at most this long (a store whose watch sees only the served prefixes may
   * never report a revision written elsewhere). @default '2s'
   */
  readonly syncWait?: Duration
  /** Where the heartbeat runs. @default asyncScheduler */
  readonly scheduler?: SchedulerLike
}

/** The options, checked and resolved. */
export interface ServerSettings {
  readonly port: number
  readonly host: string
  readonly tls: HttpServerTls | undefined
  readonly tokens: ReadonlyMap<string, Required<HttpTokenGrant>> | undefined
  readonly cors: { readonly origins: readonly string[] | '*'; readonly maxAgeS: number } | undefined
  readonly prefixes: readonly string[]
  readonly maxBodyBytes: number
  readonly maxClients: number
  readonly maxBufferedBytes: number
  readonly historySize: number
  readonly snapshotChunk: number
  readonly heartbeatMs: number
  readonly syncWaitMs: number
  readonly scheduler: SchedulerLike
}

const what = 'serveStore'

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < min) {
    throw new TypeError(`${what}: ${name}: expected an integer >= ${min}, got ${String(value)}`)
  }
  return value
}

function prefixList(name: string, value: unknown): readonly string[] {
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw new TypeError(`${what}: ${name}: expected an array of key prefixes (strings)`)
  }
  return [...value]
}

/**
 * Checks `options` and fills in the defaults.
 *
 * @throws TypeError naming the option when one is wrong.
 */
export function resolveServerOptions(options: HttpServerOptions): ServerSettings {
  const port = options.port ?? 0
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new TypeError(`${what}: port: expected an integer from 0 to 65535, got ${port}`)
  }
  let tokens: Map<string, Required<HttpTokenGrant>> | undefined
  if (options.tokens !== undefined) {
    tokens = new Map()
    for (const [token, grant] of Object.entries(options.tokens)) {
      if (token === '' || /\s/.test(token)) {
        throw new TypeError(`${what}: tokens: a token must be non-empty, without spaces`)
      }
      tokens.set(token, {
        read: prefixList(`tokens[…].read`, grant.read ?? []),
        write: prefixList(`tokens[…].write`, grant.write ?? []),
      })
    }
  }
  if (
    options.tls !== undefined &&
    (options.tls.cert === undefined || options.tls.key === undefined)
  ) {
    throw new TypeError(`${what}: tls: expected both cert and key`)
  }
  const origins = options.cors?.origins
  if (options.cors !== undefined && origins !== '*' && !Array.isArray(origins)) {
    throw new TypeError(`${what}: cors.origins: expected '*' or an array of origins`)
  }
  return {
    port,
    host: options.host ?? '127.0.0.1',
    tls: options.tls,
    tokens,
    cors:
      options.cors === undefined
        ? undefined
        : {
            origins: options.cors.origins,
            maxAgeS: Math.ceil(toMillis(options.cors.maxAge ?? '10m', 'cors.maxAge') / 1000),
          },
    prefixes: prefixList('prefixes', options.prefixes ?? ['']),
    maxBodyBytes: positiveInt('maxBodyBytes', options.maxBodyBytes, 1024 * 1024),
    maxClients: positiveInt('maxClients', options.maxClients, 10_000, 0),
    maxBufferedBytes: positiveInt('maxBufferedBytes', options.maxBufferedBytes, 4 * 1024 * 1024),
    historySize: positiveInt('historySize', options.historySize, 10_000, 0),
    snapshotChunk: positiveInt('snapshotChunk', options.snapshotChunk, 500),
    heartbeatMs: toMillis(options.heartbeat ?? '15s', 'heartbeat'),
    syncWaitMs: toMillis(options.syncWait ?? '2s', 'syncWait'),
    scheduler: options.scheduler ?? asyncScheduler,
  }
}
