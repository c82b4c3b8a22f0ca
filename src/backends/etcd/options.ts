import { X509Certificate, createPrivateKey } from 'node:crypto'
import { asyncScheduler, type Observable, type SchedulerLike } from 'rxjs'
import { toMillis, type Duration } from '../../core/duration.js'
import { describe } from '../../core/errors.js'
import type { Revision } from '../../core/revision.js'
import type { KvStore, PutOptions, TxnOp, TxnOptions, TxnResult } from '../../core/store.js'
import { show } from '../../internal/checks.js'
import type { ClientTls } from './client.js'
import { NAME } from './errors.js'
import { toBuffer } from './keys.js'

/** TLS settings of {@link EtcdStoreOptions}: PEM contents, not file names. */
export interface EtcdTlsOptions {
  /** The CA certificate(s) that signed the members' certificates. @default the system's CAs */
  readonly ca?: string | Uint8Array
  /** The client certificate, for members that check client certificates. @default none */
  readonly cert?: string | Uint8Array
  /** The client certificate's private key; required with `cert`. @default none */
  readonly key?: string | Uint8Array
  /**
   * Accept any server certificate, without checking its CA or host name. For tests only: it
   * leaves the connection open to a man in the middle. @default false
   */
  readonly insecureSkipVerify?: boolean
}

/** Options of {@link createEtcdStore}. Every field has a default; `{}` talks to 127.0.0.1:2379. */
export interface EtcdStoreOptions {
  /**
   * The members' client URLs: `host:port`, `http://host:port` or `https://host:port` (https, or
   * a `tls` option, turns TLS on). Each request goes to one of them; a member that fails is
   * left behind for another.
   *
   * @default ['127.0.0.1:2379']
   */
  readonly endpoints?: readonly string[]
  /**
   * How long a first contact may take: a watch stream must be created, and the status probe
   * must answer, within it; without `allowDelayedStart`, a watch that cannot reach etcd for this
   * long fails.
   *
   * @default '1s'
   */
  readonly dialTimeout?: Duration
  /** How long one request (get, put, a page of a listing, a transaction) may take. @default '3s' */
  readonly operationTimeout?: Duration
  /** TLS towards the members. @default none (plain text, unless an endpoint says https) */
  readonly tls?: EtcdTlsOptions
  /**
   * User and password, when etcd has authentication enabled. A wrong pair is a fatal
   * `AuthError`: the store closes with it (status `closed`), nothing retries.
   *
   * @default no authentication
   */
  readonly auth?: { readonly username: string; readonly password: string }
  /**
   * Compacts etcd's history periodically: every `autoCompact`, to the revision seen one period
   * earlier, so a watch that was away for less than one period still resumes without a relist.
   * Runs while the store is in use (a watch or a `status$` subscriber). 0 turns it off.
   *
   * @default 0 (off)
   */
  readonly autoCompact?: Duration
  /**
   * After every reconnection, relist (a snapshot with cause `reconnect`) instead of resuming
   * from the last revision. Resuming loses nothing while etcd has the history; set this (and the
   * orchestrator's own `resyncAfterReconnect`) to have consumers resynced after each outage, as
   * the Go original's `resync-after-reconnect` did.
   *
   * @default false
   */
  readonly resyncAfterReconnect?: boolean
  /**
   * Let watches wait for etcd when it cannot be reached at start (status `connecting`), retrying
   * every `reconnectInterval`, and deliver their first snapshot once it is up. Without it, a
   * watch that cannot reach etcd within `dialTimeout` fails with an `UnavailableError`.
   *
   * @default false
   */
  readonly allowDelayedStart?: boolean
  /** The longest pause between two attempts to reach etcd (reconnects back off up to it). @default '2s' */
  readonly reconnectInterval?: Duration
  /**
   * The TTL of the session lease behind `put(key, value, { session: true })`: how long such keys
   * outlive a client that died without `close()`. Rounded up to whole seconds.
   *
   * @default '5s'
   */
  readonly sessionTtl?: Duration
  /** How often the status probe asks a member for its status while `status$` or a watch is subscribed. @default '5s' */
  readonly statusInterval?: Duration
  /**
   * The most puts one write request carries. Writes (puts, deletes, transactions) go one request
   * at a time, in the order they were made; puts waiting together go as one transaction of at
   * most this many puts (and at most 128, etcd's default `--max-txn-ops`). A burst of thousands
   * of writes then never meets etcd's "too many requests". Compactions run beside the writes, at
   * most this many at once.
   *
   * @default 64
   */
  readonly maxWritesInFlight?: number
  /**
   * The largest write the store sends, in bytes of keys and values (a transaction counts all its
   * operations): a larger one fails at once with an `invalid-argument` error naming the key and
   * this limit, never sent and never retried. It is etcd's own default `--max-request-bytes`
   * (1.5 MiB); raise it with that flag on every member. A write under it that etcd still refuses
   * (a member with a lower limit, or gRPC's message limit of that flag plus 512 KiB) fails the
   * same way.
   *
   * @default 1572864
   */
  readonly maxRequestBytes?: number
  /**
   * The most keys one page of a listing asks for. Pages are also sized from the bytes seen so
   * far to stay near 16 MiB, far below the client's reply limit of 64 MiB, and every page reads
   * the same revision. Large pages are much faster: etcd walks the rest of the range for every
   * page (100k keys took 3x the time in pages of 1000).
   *
   * @default 50000
   */
  readonly pageSize?: number
  /**
   * Puts with a TTL share a lease when they come within this long of its grant: one lease per
   * TTL per window instead of one per put. A key then lives between its TTL and TTL + window.
   *
   * @default '1s'
   */
  readonly leaseWindow?: Duration
  /** Where every timer runs (timeouts, backoff, probes, keepalives, auto-compaction). @default asyncScheduler */
  readonly scheduler?: SchedulerLike
}

/** Options of an etcd put: those of every store, and the session lease. */
export interface EtcdPutOptions extends PutOptions {
  /**
   * The key lives as long as this client: it is attached to the store's session lease, kept
   * alive until `close()` (which revokes it) and expired by etcd `sessionTtl` after the client
   * died. Not with `ttl`.
   *
   * @default false
   */
  readonly session?: boolean
}

/** A transaction operation of the etcd store: a put may also use the session lease. */
export type EtcdTxnOp<V> =
  | TxnOp<V>
  | {
      readonly op: 'put'
      readonly key: string
      readonly value: V
      readonly ttl?: Duration
      readonly session?: boolean
    }

/** A {@link KvStore} over etcd, with etcd's extras: session keys and compaction. */
export interface EtcdStore extends KvStore {
  /** Writes a value; `ttl` expires it, `session` ties it to this client's life. */
  put(key: string, value: Uint8Array, options?: EtcdPutOptions): Observable<void>
  /** Runs the operations atomically when the conditions hold (one etcd transaction). */
  txn(
    ops: readonly EtcdTxnOp<Uint8Array>[],
    options?: TxnOptions<Uint8Array>,
  ): Observable<TxnResult>
  /**
   * Compacts etcd's history up to `revision` (the current revision when absent), waiting until
   * it is physically done. Watches that need older history relist. Emits the revision compacted
   * to; a revision already compacted fails with code `compacted`.
   */
  compact(revision?: Revision): Observable<{ readonly revision: Revision }>
}

/** {@link EtcdStoreOptions} checked, with every default filled in and durations in ms. */
export interface ResolvedOptions {
  readonly endpoints: readonly string[]
  readonly tls: ClientTls | undefined
  readonly dialTimeoutMs: number
  readonly operationTimeoutMs: number
  readonly autoCompactMs: number
  readonly resyncAfterReconnect: boolean
  readonly allowDelayedStart: boolean
  readonly reconnectIntervalMs: number
  readonly sessionTtlSeconds: number
  readonly statusIntervalMs: number
  readonly maxWritesInFlight: number
  readonly maxRequestBytes: number
  readonly pageSize: number
  readonly leaseWindowMs: number
  readonly scheduler: SchedulerLike
}

/** etcd's default `--max-request-bytes`: 1.5 MiB. */
export const ETCD_MAX_REQUEST_BYTES = 1_572_864

/** An endpoint: `host:port`, `http://host:port` or `https://host:port` (IPv6 in brackets). */
export const ENDPOINT =
  /^(?:(https?):\/\/)?[^/\s:]+(?::\d+)?$|^(?:(https?):\/\/)?\[[0-9a-fA-F:.]+\](?::\d+)?$/

/** Checks the options and fills in the defaults. @throws TypeError saying what was expected. */
export function resolveOptions(options: EtcdStoreOptions): ResolvedOptions {
  const endpoints: readonly unknown[] = options.endpoints ?? ['127.0.0.1:2379']
  if (!Array.isArray(endpoints) || endpoints.length === 0) {
    throw new TypeError(
      `${NAME}: endpoints: expected a non-empty array of URLs, got ${show(endpoints)}`,
    )
  }
  const checked: string[] = []
  for (const endpoint of endpoints) {
    if (typeof endpoint !== 'string' || !ENDPOINT.test(endpoint)) {
      throw new TypeError(
        `${NAME}: endpoints: expected 'host:port', 'http://host:port' or 'https://host:port', got ${show(endpoint)}`,
      )
    }
    checked.push(endpoint)
  }
  const secure = checked.filter((endpoint) => endpoint.startsWith('https://')).length
  if (secure > 0 && secure < endpoints.length) {
    throw new TypeError(
      `${NAME}: endpoints: expected one scheme for every endpoint (all https or none), got ${show(checked.join(', '))}`,
    )
  }
  const tlsOptions = options.tls
  const tls: ClientTls | undefined =
    tlsOptions === undefined
      ? undefined
      : {
          ca: pem('ca', tlsOptions.ca),
          cert: pem('cert', tlsOptions.cert),
          key: pem('key', tlsOptions.key),
          insecureSkipVerify: tlsOptions.insecureSkipVerify === true,
        }
  if (tls && (tls.cert === undefined) !== (tls.key === undefined)) {
    throw new TypeError(
      `${NAME}: tls: give cert and key together (a client certificate needs its key)`,
    )
  }
  if (options.auth !== undefined) {
    const { username, password } = options.auth
    if (typeof username !== 'string' || username === '' || typeof password !== 'string') {
      throw new TypeError(
        `${NAME}: auth: expected { username, password } as strings, got ${show(options.auth)}`,
      )
    }
  }
  const ms = (name: string, value: Duration | undefined, fallback: Duration) =>
    toMillis(value ?? fallback, `${NAME}: ${name}`)
  const positive = (name: string, value: Duration | undefined, fallback: Duration) => {
    const result = ms(name, value, fallback)
    if (result <= 0)
      throw new TypeError(`${NAME}: ${name}: expected a positive duration, got ${show(value)}`)
    return result
  }
  const count = (name: string, value: number | undefined, fallback: number) => {
    const result = value ?? fallback
    if (!Number.isInteger(result) || result < 1) {
      throw new TypeError(`${NAME}: ${name}: expected an integer of at least 1, got ${show(value)}`)
    }
    return result
  }
  return {
    endpoints: checked,
    tls,
    dialTimeoutMs: positive('dialTimeout', options.dialTimeout, '1s'),
    operationTimeoutMs: positive('operationTimeout', options.operationTimeout, '3s'),
    autoCompactMs: ms('autoCompact', options.autoCompact, 0),
    resyncAfterReconnect: options.resyncAfterReconnect === true,
    allowDelayedStart: options.allowDelayedStart === true,
    reconnectIntervalMs: positive('reconnectInterval', options.reconnectInterval, '2s'),
    sessionTtlSeconds: Math.ceil(positive('sessionTtl', options.sessionTtl, '5s') / 1000),
    statusIntervalMs: positive('statusInterval', options.statusInterval, '5s'),
    maxWritesInFlight: count('maxWritesInFlight', options.maxWritesInFlight, 64),
    maxRequestBytes: count('maxRequestBytes', options.maxRequestBytes, ETCD_MAX_REQUEST_BYTES),
    pageSize: count('pageSize', options.pageSize, 50_000),
    leaseWindowMs: ms('leaseWindow', options.leaseWindow, '1s'),
    scheduler: options.scheduler ?? asyncScheduler,
  }
}

function pem(
  name: 'ca' | 'cert' | 'key',
  value: string | Uint8Array | undefined,
): Buffer | undefined {
  if (value === undefined) return undefined
  let bytes: Buffer
  if (typeof value === 'string') bytes = Buffer.from(value, 'utf8')
  else if (value instanceof Uint8Array) bytes = toBuffer(value)
  else throw new TypeError(`${NAME}: tls.${name}: expected PEM text or bytes, got ${show(value)}`)
  try {
    if (name === 'key') createPrivateKey(bytes)
    else new X509Certificate(bytes)
  } catch (error) {
    throw new TypeError(
      `${NAME}: tls.${name}: expected a PEM ${name === 'key' ? 'private key' : 'certificate'}, got something else (${describe(error)})`,
      { cause: error },
    )
  }
  return bytes
}
