import { asyncScheduler, type SchedulerLike } from 'rxjs'
import type { Duration } from '../../core/duration.js'
import { ConfigError } from '../../core/errors.js'
import { optionChecks } from '../../internal/checks.js'
import { NAME } from './errors.js'

/** TLS towards the servers. Files are read when the store first connects. */
export interface NatsTlsOptions {
  /** PEM file of the certificate authority that signed the servers' certificates. @default Node's trusted CAs */
  readonly caFile?: string
  /** PEM file of this client's certificate, for servers that verify clients. Needs `keyFile`. @default none */
  readonly certFile?: string
  /** PEM file of the private key of `certFile`. @default none */
  readonly keyFile?: string
  /** Start TLS before the server's INFO (servers with `handshake_first`). @default false */
  readonly handshakeFirst?: boolean
}

/** The bucket to create when it is missing (`create`). */
export interface NatsBucketOptions {
  /** Copies of every value in a cluster: 1, 3 or 5. @default 1 */
  readonly replicas?: number
  /** Values kept per key (1 to 64); older ones are removed as keys are rewritten. @default 1 */
  readonly history?: number
  /** Where the bucket's stream keeps its messages. @default 'file' */
  readonly storage?: 'file' | 'memory'
  /** The largest value in bytes. @default no limit (the server's max_payload) */
  readonly maxValueSize?: number
}

/** Options of {@link createNatsStore}. */
export interface NatsStoreOptions {
  /**
   * The servers to connect to: `nats://host:port` (or `tls://`, or `host:port`). The client
   * follows the cluster's other servers as the server it is connected to announces them (unless
   * `discoverServers` is false).
   *
   * @default the `NATS_URL` environment variable (comma-separated), else `'nats://127.0.0.1:4222'`
   */
  readonly servers?: string | readonly string[]
  /** The JetStream KV bucket (`[-_a-zA-Z0-9]`). @default 'rx-datasync' */
  readonly bucket?: string
  /**
   * Create the bucket when it does not exist, with these settings (`true`: the defaults). An
   * existing bucket is used as it is. Without it a missing bucket fails each operation (and ends
   * each watch) with a `ConfigError` naming it.
   *
   * @default false
   */
  readonly create?: boolean | NatsBucketOptions
  /** User name for user/password authentication (with `password`). @default none */
  readonly user?: string
  /** Password of `user`. @default none */
  readonly password?: string
  /** Token authentication. @default none */
  readonly token?: string
  /** An nkey seed (`SU...`) for nkey authentication; read from `nkeyFile` in config files. @default none */
  readonly nkeySeed?: string
  /** A `.creds` file (JWT and nkey seed) for decentralized authentication. @default none */
  readonly credsFile?: string
  /** TLS settings; giving them requires TLS from the servers. @default none */
  readonly tls?: NatsTlsOptions
  /** The connection's name, shown by the server's monitoring (`/connz`). @default 'rx-datasync' */
  readonly name?: string
  /** How long one attempt to connect may take. @default '5s' */
  readonly connectTimeout?: Duration
  /** How long a JetStream request (a read, a write, a consumer) may go unanswered. @default '5s' */
  readonly requestTimeout?: Duration
  /** The pause between rounds of reconnection attempts. @default '1s' */
  readonly reconnectTimeWait?: Duration
  /** Reconnection attempts per server before the client gives up (-1: never). @default -1 */
  readonly maxReconnectAttempts?: number
  /**
   * How often the client pings the server; two unanswered pings mark the connection dead (a
   * paused or unreachable server is noticed within about twice this).
   *
   * @default '10s'
   */
  readonly pingInterval?: Duration
  /** Follow the servers the cluster announces. `false` keeps to `servers`. @default true */
  readonly discoverServers?: boolean
  /**
   * The idle heartbeat a watch's consumer sends; a watch that hears nothing for three of them
   * takes its consumer for lost and resumes on a new one.
   *
   * @default '5s'
   */
  readonly heartbeat?: Duration
  /**
   * How long after it broke a watch still resumes from its last revision. Beyond it, the watch
   * lists afresh: a marker of a delete may have been purged (`nats kv purge-deletes` removes the
   * ones older than 30 minutes) without leaving a trace the watch could see.
   *
   * @default '10m'
   */
  readonly resumeWithin?: Duration
  /**
   * Read with JetStream's direct get, which any replica answers: faster, but right after a write
   * a replica may not have it yet. `false` asks the stream's leader.
   *
   * @default false
   */
  readonly directGets?: boolean
  /** The first pause before a failed watch tries again; it doubles up to `maxRetryDelay`. @default '100ms' */
  readonly retryDelay?: Duration
  /** The longest pause between two tries of a failing watch. @default '5s' */
  readonly maxRetryDelay?: Duration
  /** The most writes in flight at once; more wait here. @default 256 */
  readonly maxConcurrentRequests?: number
  /**
   * Have consumers resynced after each reconnection: carried for the orchestrator (give it to
   * `createDatasync(store, { resyncAfterReconnect })`; the CLI does). The store resumes its
   * watches either way.
   *
   * @default false
   */
  readonly resyncAfterReconnect?: boolean
  /** Where every timer (timeouts, heartbeat checks, backoff) is scheduled. @default asyncScheduler */
  readonly scheduler?: SchedulerLike
}

/** The options, checked and resolved. */
export interface Settings {
  readonly servers: readonly string[]
  readonly bucket: string
  readonly create: Required<NatsBucketOptions> | undefined
  readonly user: string | undefined
  readonly password: string | undefined
  readonly token: string | undefined
  readonly nkeySeed: string | undefined
  readonly credsFile: string | undefined
  readonly tls: NatsTlsOptions | undefined
  readonly name: string
  readonly connectTimeoutMs: number
  readonly requestTimeoutMs: number
  readonly reconnectTimeWaitMs: number
  readonly maxReconnectAttempts: number
  readonly pingIntervalMs: number
  readonly discoverServers: boolean
  readonly heartbeatMs: number
  readonly resumeWithinMs: number
  readonly directGets: boolean
  readonly retryDelayMs: number
  readonly maxRetryDelayMs: number
  readonly maxConcurrentRequests: number
  readonly scheduler: SchedulerLike
}

/** The environment the defaults come from. */
export type Environment = Readonly<Record<string, string | undefined>>

const BUCKET = /^[-\w]+$/
const SERVER = /^((nats|tls|ws|wss):\/\/)?[^\s/]+(:\d+)?\/?$/

/**
 * Checks `options` and fills in the defaults.
 *
 * @throws ConfigError naming `source` and the field when a value is wrong.
 */
export function resolveOptions(
  options: NatsStoreOptions,
  source = `${NAME} store options`,
  env: Environment = process.env,
): Settings {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(source, undefined, `expected an options object, got ${typeof options}`)
  }
  const { fail, text, positive: duration } = optionChecks(source)
  const whole = (field: string, value: unknown, fallback: number, min: number): number => {
    const n = value ?? fallback
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min) {
      return fail(field, `expected a whole number of at least ${min}, got ${JSON.stringify(n)}`)
    }
    return n
  }
  const flag = (field: string, value: unknown, fallback: boolean): boolean => {
    if (value === undefined) return fallback
    if (typeof value !== 'boolean')
      return fail(field, `expected a boolean, got ${JSON.stringify(value)}`)
    return value
  }

  const fromEnv = env.NATS_URL?.split(',')
    .map((server) => server.trim())
    .filter((s) => s !== '')
  const rawServers = options.servers ?? (fromEnv?.length ? fromEnv : ['nats://127.0.0.1:4222'])
  const serverList = typeof rawServers === 'string' ? [rawServers] : rawServers
  const serversField =
    options.servers === undefined && fromEnv?.length ? 'servers (NATS_URL)' : 'servers'
  if (!Array.isArray(serverList) || serverList.length === 0) {
    fail(
      serversField,
      `expected a server URL or a non-empty list of them, got ${JSON.stringify(rawServers)}`,
    )
  }
  for (const server of serverList) {
    if (typeof server !== 'string' || !SERVER.test(server)) {
      fail(
        serversField,
        `expected nats://host:port (or tls://, or host:port), got ${JSON.stringify(server)}`,
      )
    }
  }
  const bucket = text('bucket', options.bucket) ?? 'rx-datasync'
  if (!BUCKET.test(bucket)) {
    fail('bucket', `expected letters, digits, '-' and '_' only, got ${JSON.stringify(bucket)}`)
  }
  const user = text('user', options.user)
  const password = text('password', options.password)
  if ((user === undefined) !== (password === undefined)) {
    fail(
      user === undefined ? 'user' : 'password',
      'user/password authentication needs both user and password',
    )
  }
  const token = text('token', options.token)
  const nkeySeed = text('nkeySeed', options.nkeySeed)
  if (nkeySeed !== undefined && !/^S[A-Z2-7]{57}$/.test(nkeySeed)) {
    fail(
      'nkeySeed',
      'expected an nkey seed: 58 characters of base32 starting with S (SU... for a user)',
    )
  }
  const credsFile = text('credsFile', options.credsFile)
  const methods = [user, token, nkeySeed, credsFile].filter((m) => m !== undefined).length
  if (methods > 1) {
    fail('token', 'give one way to authenticate: user/password, token, nkey or creds file')
  }
  const tls = resolveTls(options.tls, fail)
  const retryDelayMs = duration('retryDelay', options.retryDelay, '100ms')
  const maxRetryDelayMs = duration('maxRetryDelay', options.maxRetryDelay, '5s')
  if (maxRetryDelayMs < retryDelayMs) {
    fail(
      'maxRetryDelay',
      `expected at least retryDelay (${retryDelayMs} ms), got ${maxRetryDelayMs} ms`,
    )
  }
  const maxReconnectAttempts = options.maxReconnectAttempts ?? -1
  if (!Number.isInteger(maxReconnectAttempts) || maxReconnectAttempts < -1) {
    fail(
      'maxReconnectAttempts',
      `expected -1 (forever) or a whole number, got ${JSON.stringify(maxReconnectAttempts)}`,
    )
  }
  flag('resyncAfterReconnect', options.resyncAfterReconnect, false)

  return {
    servers: serverList,
    bucket,
    create: resolveBucket(options.create, fail, whole),
    user,
    password,
    token,
    nkeySeed,
    credsFile,
    tls,
    name: text('name', options.name) ?? 'rx-datasync',
    connectTimeoutMs: duration('connectTimeout', options.connectTimeout, '5s'),
    requestTimeoutMs: duration('requestTimeout', options.requestTimeout, '5s'),
    reconnectTimeWaitMs: duration('reconnectTimeWait', options.reconnectTimeWait, '1s'),
    maxReconnectAttempts,
    pingIntervalMs: duration('pingInterval', options.pingInterval, '10s'),
    discoverServers: flag('discoverServers', options.discoverServers, true),
    heartbeatMs: duration('heartbeat', options.heartbeat, '5s'),
    resumeWithinMs: duration('resumeWithin', options.resumeWithin, '10m'),
    directGets: flag('directGets', options.directGets, false),
    retryDelayMs,
    maxRetryDelayMs,
    maxConcurrentRequests: whole('maxConcurrentRequests', options.maxConcurrentRequests, 256, 1),
    scheduler: options.scheduler ?? asyncScheduler,
  }
}

function resolveBucket(
  create: boolean | NatsBucketOptions | undefined,
  fail: (field: string, message: string) => never,
  whole: (field: string, value: unknown, fallback: number, min: number) => number,
): Required<NatsBucketOptions> | undefined {
  if (create === undefined || create === false) return undefined
  const given: NatsBucketOptions = create === true ? {} : create
  if (typeof given !== 'object' || given === null) {
    return fail('create', `expected a boolean or bucket settings, got ${JSON.stringify(create)}`)
  }
  const replicas = whole('create.replicas', given.replicas, 1, 1)
  if (![1, 3, 5].includes(replicas)) fail('create.replicas', `expected 1, 3 or 5, got ${replicas}`)
  const history = whole('create.history', given.history, 1, 1)
  if (history > 64)
    fail('create.history', `expected at most 64 (JetStream's limit), got ${history}`)
  const storage = given.storage ?? 'file'
  if (storage !== 'file' && storage !== 'memory') {
    fail('create.storage', `expected 'file' or 'memory', got ${JSON.stringify(storage)}`)
  }
  return {
    replicas,
    history,
    storage,
    maxValueSize:
      given.maxValueSize === undefined
        ? -1
        : whole('create.maxValueSize', given.maxValueSize, -1, 1),
  }
}

function resolveTls(
  tls: NatsTlsOptions | undefined,
  fail: (field: string, message: string) => never,
): NatsTlsOptions | undefined {
  if (tls === undefined) return undefined
  if (typeof tls !== 'object' || tls === null) {
    return fail('tls', `expected an object, got ${JSON.stringify(tls)}`)
  }
  for (const field of ['caFile', 'certFile', 'keyFile'] as const) {
    const value = tls[field]
    if (value !== undefined && (typeof value !== 'string' || value === '')) {
      fail(`tls.${field}`, `expected a non-empty string, got ${JSON.stringify(value)}`)
    }
  }
  if (tls.handshakeFirst !== undefined && typeof tls.handshakeFirst !== 'boolean') {
    fail('tls.handshakeFirst', `expected a boolean, got ${JSON.stringify(tls.handshakeFirst)}`)
  }
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    fail(
      tls.certFile === undefined ? 'tls.certFile' : 'tls.keyFile',
      'a client certificate needs both certFile and keyFile',
    )
  }
  return tls
}
