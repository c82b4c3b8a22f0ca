import { asyncScheduler, type SchedulerLike } from 'rxjs'
import type { Duration } from '../../core/duration.js'
import { ConfigError } from '../../core/errors.js'
import { optionChecks } from '../../internal/checks.js'
import { NAME } from './errors.js'

/** TLS towards the agent's HTTPS port (`ports.https`). Files are read when the store first connects. */
export interface ConsulTlsOptions {
  /**
   * PEM file of the certificate authority that signed the agent's certificate.
   *
   * @default Node's bundled trusted CAs
   */
  readonly caFile?: string
  /**
   * PEM file of this client's certificate, for agents that verify clients
   * (`tls.https.verify_incoming`). Needs `keyFile`.
   *
   * @default no client certificate
   */
  readonly certFile?: string
  /**
   * PEM file of the private key of `certFile`.
   *
   * @default no client certificate
   */
  readonly keyFile?: string
  /**
   * The name the agent's certificate must carry, when it differs from the address's host (Consul's
   * own certificates name `server.<datacenter>.<domain>` or `localhost`).
   *
   * @default the address's host
   */
  readonly serverName?: string
  /**
   * Accepts any certificate the agent presents. For tests only: it gives up the protection TLS is
   * for.
   *
   * @default false
   */
  readonly insecureSkipVerify?: boolean
}

/** Options of {@link createConsulStore}. */
export interface ConsulStoreOptions {
  /**
   * The agent's HTTP API: `host:port`, `http://host:port` or `https://host:port`, optionally with
   * a path prefix (`https://proxy:443/consul`). Without a scheme, https is used when `tls` is
   * given (or `CONSUL_HTTP_SSL=true`), http otherwise. Talk to the local agent (a client agent or
   * a server): it forwards to the servers and follows their leader.
   *
   * @default the `CONSUL_HTTP_ADDR` environment variable, else `'127.0.0.1:8500'`
   */
  readonly address?: string
  /**
   * The ACL token sent with every request (`X-Consul-Token`). A token the agent does not know is a
   * fatal `AuthError` that closes the store; a token that lacks a permission fails that operation
   * (or watch) with an `AuthError`.
   *
   * @default the `CONSUL_HTTP_TOKEN` environment variable, else none (the agent's default token)
   */
  readonly token?: string
  /**
   * The datacenter to read and write (`?dc=`).
   *
   * @default the agent's own datacenter
   */
  readonly datacenter?: string
  /**
   * TLS settings; giving them makes a scheme-less address https.
   *
   * @default none: plain http
   */
  readonly tls?: ConsulTlsOptions
  /**
   * The consistency mode of reads and watches: `'default'` (answered by the leader, which may in
   * rare cases of a leadership change be stale), `'consistent'` (the leader checks it is still the
   * leader first: one more round trip to a quorum) or `'stale'` (any server answers: fast,
   * scalable, possibly behind; a watch still sees every final value, later).
   *
   * @default 'default'
   */
  readonly consistency?: 'default' | 'consistent' | 'stale'
  /**
   * How long one blocking query of a watch waits for a change before Consul answers anyway
   * (`?wait=`; Consul adds up to a sixteenth as jitter and caps it at 10 minutes).
   *
   * @default '30s'
   */
  readonly waitTime?: Duration
  /**
   * How long a request may go unanswered before it fails with a retryable `timeout` error; a
   * blocking query gets `waitTime` plus a sixteenth plus this.
   *
   * @default '10s'
   */
  readonly requestTimeout?: Duration
  /**
   * The shortest time from the start of a blocking query that brought no news (Consul's wait ran
   * out, or only keys outside the watched prefixes changed under their common root) to the start
   * of the next one, so that a busy neighbourhood cannot spin a watch. A query that brought changes
   * is followed by the next at once: each listing shows the state at its index, so writes that
   * land within one round trip of each other are merged (the watch sees the last value, never
   * skips a final one).
   *
   * @default '100ms'
   */
  readonly minQueryInterval?: Duration
  /**
   * The first pause before a failed watch or status check tries again; it doubles with each
   * failure in a row up to `maxRetryDelay`.
   *
   * @default '250ms'
   */
  readonly retryDelay?: Duration
  /**
   * The longest pause between two tries of a failing watch.
   *
   * @default '10s'
   */
  readonly maxRetryDelay?: Duration
  /**
   * The most requests in flight at once, blocking queries of watches aside (each watch holds one
   * connection of its own); more wait here for a free connection. Keeps a burst of writes under
   * the agent's limit of connections per client (`limits.http_max_conns_per_client`, 200 by
   * default).
   *
   * @default 32
   */
  readonly maxConcurrentRequests?: number
  /**
   * How often `status$` asks the agent for the cluster leader (`GET /v1/status/leader`) while
   * someone subscribes to it.
   *
   * @default '5s'
   */
  readonly statusInterval?: Duration
  /**
   * The shortest TTL a put accepts: the servers' `session_ttl_min` (Consul's default is 10s).
   * Lower it only together with the servers' setting.
   *
   * @default '10s'
   */
  readonly minTtl?: Duration
  /**
   * Have consumers resynced after each reconnection: the configuration file's
   * `resync-after-reconnect`, carried for the orchestrator (give it to `createDatasync(store, {
   * resyncAfterReconnect })`; the CLI does). The store itself needs no setting: its watch always
   * lists afresh after a lost connection (a snapshot with cause `reconnect`), which the orchestrator
   * turns into changes unless told to resync.
   *
   * @default false
   */
  readonly resyncAfterReconnect?: boolean
  /**
   * Where every timer (timeouts, rate limit, backoff, status checks) is scheduled.
   *
   * @default asyncScheduler
   */
  readonly scheduler?: SchedulerLike
}

/** The options, checked and resolved. */
export interface Settings {
  /** `http(s)://host:port[/path]/v1`, what the consul client takes as `baseUrl`. */
  readonly baseUrl: string
  /** The address as messages name it: `host:port` or the URL given. */
  readonly address: string
  readonly secure: boolean
  readonly host: string
  readonly token: string | undefined
  readonly datacenter: string | undefined
  readonly tls: ConsulTlsOptions | undefined
  readonly consistency: 'default' | 'consistent' | 'stale'
  readonly waitMs: number
  readonly requestTimeoutMs: number
  readonly minQueryIntervalMs: number
  readonly retryDelayMs: number
  readonly maxRetryDelayMs: number
  readonly statusIntervalMs: number
  readonly maxConcurrentRequests: number
  readonly minTtlMs: number
  readonly scheduler: SchedulerLike
}

/** Consul caps `?wait=` at ten minutes. */
const MAX_WAIT_MS = 10 * 60_000

const CONSISTENCY = ['default', 'consistent', 'stale'] as const

/** The environment the defaults come from. */
export type Environment = Readonly<Record<string, string | undefined>>

/**
 * Checks `options` and fills in the defaults.
 *
 * @throws ConfigError naming `source` and the field when a value is wrong.
 */
export function resolveOptions(
  options: ConsulStoreOptions,
  source = `${NAME} store options`,
  env: Environment = process.env,
): Settings {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(source, undefined, `expected an options object, got ${typeof options}`)
  }
  const { fail, text: optionalString, duration } = optionChecks(source)

  const tls = resolveTls(options.tls, fail)
  const address = parseAddress(
    optionalString('address', options.address) ??
      nonEmpty(env.CONSUL_HTTP_ADDR) ??
      '127.0.0.1:8500',
    tls !== undefined || env.CONSUL_HTTP_SSL === 'true',
    tls !== undefined,
    (message) =>
      fail(options.address === undefined ? 'address (CONSUL_HTTP_ADDR)' : 'address', message),
  )
  const consistency = options.consistency ?? 'default'
  if (!CONSISTENCY.includes(consistency)) {
    fail(
      'consistency',
      `expected one of ${CONSISTENCY.join(', ')}, got ${JSON.stringify(consistency)}`,
    )
  }

  const waitMs = duration('waitTime', options.waitTime, '30s')
  if (waitMs < 1 || waitMs > MAX_WAIT_MS) {
    fail(
      'waitTime',
      `expected a duration from 1ms to 10m (Consul's longest wait), got ${waitMs} ms`,
    )
  }
  const requestTimeoutMs = duration('requestTimeout', options.requestTimeout, '10s')
  if (requestTimeoutMs <= 0) fail('requestTimeout', 'expected a positive duration')
  const retryDelayMs = duration('retryDelay', options.retryDelay, '250ms')
  if (retryDelayMs <= 0) fail('retryDelay', 'expected a positive duration')
  const maxRetryDelayMs = duration('maxRetryDelay', options.maxRetryDelay, '10s')
  if (maxRetryDelayMs < retryDelayMs) {
    fail(
      'maxRetryDelay',
      `expected at least retryDelay (${retryDelayMs} ms), got ${maxRetryDelayMs} ms`,
    )
  }
  const statusIntervalMs = duration('statusInterval', options.statusInterval, '5s')
  if (statusIntervalMs <= 0) fail('statusInterval', 'expected a positive duration')
  const maxConcurrentRequests = options.maxConcurrentRequests ?? 32
  if (!Number.isInteger(maxConcurrentRequests) || maxConcurrentRequests < 1) {
    fail(
      'maxConcurrentRequests',
      `expected a whole number of at least 1, got ${JSON.stringify(maxConcurrentRequests)}`,
    )
  }
  const minTtlMs = duration('minTtl', options.minTtl, '10s')
  if (minTtlMs < 1_000)
    fail('minTtl', `expected at least 1s (Consul's smallest session_ttl_min), got ${minTtlMs} ms`)
  // Only for the orchestrator (see the option), but a wrong value is still named here.
  const resync: unknown = options.resyncAfterReconnect
  if (resync !== undefined && typeof resync !== 'boolean') {
    fail('resyncAfterReconnect', `expected a boolean, got ${JSON.stringify(resync)}`)
  }

  return {
    ...address,
    token: optionalString('token', options.token) ?? nonEmpty(env.CONSUL_HTTP_TOKEN),
    datacenter: optionalString('datacenter', options.datacenter),
    tls,
    consistency,
    waitMs,
    requestTimeoutMs,
    minQueryIntervalMs: duration('minQueryInterval', options.minQueryInterval, '100ms'),
    retryDelayMs,
    maxRetryDelayMs,
    statusIntervalMs,
    maxConcurrentRequests,
    minTtlMs,
    scheduler: options.scheduler ?? asyncScheduler,
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}

function resolveTls(
  tls: ConsulTlsOptions | undefined,
  fail: (field: string, message: string) => never,
): ConsulTlsOptions | undefined {
  if (tls === undefined) return undefined
  if (typeof tls !== 'object' || tls === null) {
    return fail('tls', `expected an object, got ${JSON.stringify(tls)}`)
  }
  for (const field of ['caFile', 'certFile', 'keyFile', 'serverName'] as const) {
    const value = tls[field]
    if (value !== undefined && (typeof value !== 'string' || value === '')) {
      fail(`tls.${field}`, `expected a non-empty string, got ${JSON.stringify(value)}`)
    }
  }
  if (tls.insecureSkipVerify !== undefined && typeof tls.insecureSkipVerify !== 'boolean') {
    fail(
      'tls.insecureSkipVerify',
      `expected a boolean, got ${JSON.stringify(tls.insecureSkipVerify)}`,
    )
  }
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    fail(
      tls.certFile === undefined ? 'tls.certFile' : 'tls.keyFile',
      'a client certificate needs both certFile and keyFile',
    )
  }
  return tls
}

/** Parses `host:port`, `[v6]:port` or `http(s)://host:port[/path]`. */
function parseAddress(
  raw: string,
  defaultSecure: boolean,
  hasTls: boolean,
  fail: (message: string) => never,
): Pick<Settings, 'baseUrl' | 'address' | 'secure' | 'host'> {
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw)
  let url: URL
  try {
    url = new URL(hasScheme ? raw : `${defaultSecure ? 'https' : 'http'}://${raw}`)
  } catch {
    return fail(`expected host:port or http(s)://host:port, got ${JSON.stringify(raw)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return fail(`expected an http:// or https:// address, got ${JSON.stringify(raw)}`)
  }
  const secure = url.protocol === 'https:'
  if (hasTls && !secure) {
    return fail(`tls is set but the address ${JSON.stringify(raw)} is plain http://; use https://`)
  }
  if (url.hostname === '' || url.search !== '' || url.hash !== '' || url.username !== '') {
    return fail(`expected host:port or http(s)://host:port[/path], got ${JSON.stringify(raw)}`)
  }
  const port =
    url.port === '' ? (hasScheme ? (secure ? '443' : '80') : secure ? '8501' : '8500') : url.port
  const path = url.pathname.replace(/\/+$/, '')
  return {
    baseUrl: `${url.protocol}//${url.hostname}:${port}${path}/v1`,
    address: hasScheme ? raw : `${url.hostname}:${port}`,
    secure,
    host: url.hostname.replace(/^\[|\]$/g, ''),
  }
}
