import type { ConnectionOptions } from 'node:tls'
import type { SchedulerLike } from 'rxjs'
import { toMillis, type Duration } from '../../core/duration.js'

/** A server address: `'host:port'` or `{ host, port }`. */
export type RedisAddress = string | { readonly host: string; readonly port: number }

/** A master watched by Redis Sentinel. */
export interface RedisSentinelOptions {
  /** The sentinels to ask for the master (at least one). */
  readonly sentinels: readonly RedisAddress[]
  /** The name the sentinels monitor the master under (`sentinel monitor <name> ...`). */
  readonly masterName: string
  /** The password of the sentinels themselves, when they require one. @default none */
  readonly sentinelPassword?: string
  /** The user name on the sentinels (ACL). @default none */
  readonly sentinelUsername?: string
}

/** A Redis Cluster. */
export interface RedisClusterOptions {
  /** Nodes to discover the cluster from (any node will do; the client learns the rest). */
  readonly nodes: readonly RedisAddress[]
  /**
   * Where broker reads (`get`, `list`) go: `'master'`, `'slave'` (replicas, may be stale: the Go
   * original's `enable-query-on-slave`) or `'all'` (masters and replicas: the closest ioredis
   * offers to `route-by-latency`). Watches always read from masters.
   *
   * @default 'master'
   */
  readonly scaleReads?: 'master' | 'slave' | 'all'
  /** How many MOVED/ASK redirections a command may follow. @default 16 */
  readonly maxRedirects?: number
}

/**
 * Options of {@link createRedisStore}. Give exactly one of `node`, `sentinel` or `cluster`.
 *
 * ioredis speaks RESP2 on every connection of the store (see `connections.ts` for why), keeps
 * one multiplexed connection per server for the broker, and opens dedicated connections per
 * watch: a subscriber and a reader per master.
 */
export interface RedisStoreOptions {
  /** One Redis server. @default none */
  readonly node?: RedisAddress
  /** A master found through Redis Sentinel, followed across failovers. @default none */
  readonly sentinel?: RedisSentinelOptions
  /** A Redis Cluster: notifications and listings come from every master. @default none */
  readonly cluster?: RedisClusterOptions
  /** The database number (not with `cluster`, which has only database 0). @default 0 */
  readonly db?: number
  /** The ACL user name. @default none (the default user) */
  readonly username?: string
  /** The password (AUTH). @default none */
  readonly password?: string
  /** TLS settings; absent means plain TCP. @default none */
  readonly tls?: ConnectionOptions
  /**
   * Maps the addresses the servers announce to the ones to connect to (NAT, containers, test
   * proxies): `'host:port'` to `{ host, port }`. Applies to Sentinel and Cluster.
   *
   * @default no mapping
   */
  readonly natMap?: Readonly<Record<string, { readonly host: string; readonly port: number }>>
  /** How long to wait for a TCP connection (the Go original's `dial-timeout`). @default '10s' */
  readonly connectTimeout?: Duration
  /**
   * How long a command may wait for its reply before it fails with a retryable
   * `UnavailableError` (the Go original's `read-timeout`). Also the bound of the watch's
   * heartbeat.
   *
   * @default '5s'
   */
  readonly commandTimeout?: Duration
  /**
   * The largest key or value a write sends, in bytes: a larger one fails at once with an
   * `invalid-argument` error naming the key and this limit, never sent and never retried. A key
   * or value over 1 MiB is also checked against the server's own `proto-max-bulk-len` (read with
   * CONFIG GET; a larger argument makes the server drop the connection with "Protocol error:
   * invalid bulk length"). Where CONFIG is not allowed, this is the only check: set it to the
   * server's limit when that is lowered (512 MiB by default, also Redis's limit on a string).
   *
   * @default 536870912
   */
  readonly maxValueBytes?: number
  /**
   * What a watch does about `notify-keyspace-events`, which must include the classes `K`, `g`,
   * `$`, `x` and `e`: `'configure'` reads it and adds what is missing with CONFIG SET;
   * `'verify'` reads it and leaves the server alone, failing the watch with a `ConfigError` that
   * names the missing classes; `'assume'` trusts the server's own configuration without CONFIG
   * (for managed services that disable the command: a missing class then means lost events).
   *
   * @default 'configure'
   */
  readonly keyspaceEvents?: 'configure' | 'verify' | 'assume'
  /**
   * Called after a watch changed a server's `notify-keyspace-events` (`keyspaceEvents:
   * 'configure'` and classes were missing), with the server and the setting before and after: a
   * change to a shared server's configuration should be logged, not silent. The command line
   * prints it on stderr.
   */
  readonly onKeyspaceEventsSet?: (change: {
    readonly server: string
    readonly before: string
    readonly after: string
  }) => void
  /**
   * How often a watch pings its subscriber connections: a connection that stops answering (a
   * paused or partitioned server) is dropped and the watch relists once it is back.
   *
   * @default '2s'
   */
  readonly heartbeatInterval?: Duration
  /**
   * How often a Cluster watch compares the cluster's slot map with the one it subscribed under;
   * a failover or a slot move makes it resubscribe and relist.
   *
   * @default '1s'
   */
  readonly topologyCheckInterval?: Duration
  /**
   * The first delay before a broken watch or connection tries again; it doubles each time.
   * @default '100ms'
   */
  readonly reconnectDelay?: Duration
  /** The longest delay between attempts. @default '5s' */
  readonly maxReconnectDelay?: Duration
  /** The COUNT hint of each SCAN page. @default 1000 */
  readonly scanCount?: number
  /**
   * How many keys the store remembers revisions for (see "Revisions" in `createRedisStore`);
   * the least recently seen are forgotten first. Listing or watching more keys than this costs
   * the same per key (forgetting one is O(1)); a forgotten key gets a new revision when seen.
   *
   * @default 100_000
   */
  readonly revisionCacheSize?: number
  /**
   * What a watch keeps per key (see "Watch memory" in `createRedisStore`).
   * - `'lean'` (the default): nothing per key once the values just read are settled, so a watch
   *   costs about what hand-written code on ioredis does (the benchmark in `bench/` measures it).
   *   Change events carry no `prev` (the orchestrator gives its consumers `prev` from their own
   *   views, so they lose nothing); a delete may name a key the watch never reported; a rewrite
   *   with the same value by another client is reported as a put (as etcd does); revisions from a
   *   watch do not work in revision conditions (those from `get`, `list`, `put` and `txn` do).
   * - `'values'`: a copy of every watched key's value, recorded in the revision table too. Change
   *   events carry `prev`; a rewrite of a key with the value it already had, by another client, is
   *   not reported; the revisions of a watch's snapshots and changes work in revision conditions.
   *   It costs about 300 bytes a key more (100k keys under the orchestrator: 2.5 times the heap of
   *   hand-written code holding the parsed values, against 1.4 times with `'lean'`).
   *
   * @default 'lean'
   */
  readonly watchMemory?: 'values' | 'lean'
  /**
   * The client name of the store's connections (`CLIENT SETNAME`); watch connections get
   * `:watch` and `:read` appended. Helps find them in `CLIENT LIST`.
   *
   * @default 'rx-datasync'
   */
  readonly connectionName?: string
  /**
   * Where the store's timers run (heartbeats, retries, topology checks).
   * @default asyncScheduler
   */
  readonly scheduler?: SchedulerLike
}

/** A parsed address. */
export interface HostPort {
  readonly host: string
  readonly port: number
}

/** Where the store connects: one of the three deployments. Internal. */
export type Target =
  | { readonly mode: 'node'; readonly node: HostPort }
  | {
      readonly mode: 'sentinel'
      readonly sentinels: readonly HostPort[]
      readonly masterName: string
      readonly sentinelPassword?: string
      readonly sentinelUsername?: string
    }
  | {
      readonly mode: 'cluster'
      readonly nodes: readonly HostPort[]
      readonly scaleReads: 'master' | 'slave' | 'all'
      readonly maxRedirects: number
    }

/** The options with defaults applied and values checked. Internal. */
export interface Settings {
  readonly target: Target
  readonly db: number
  readonly username?: string
  readonly password?: string
  readonly tls?: ConnectionOptions
  readonly natMap: Readonly<Record<string, HostPort>>
  readonly connectTimeoutMs: number
  readonly commandTimeoutMs: number
  readonly maxValueBytes: number
  readonly keyspaceEvents: 'configure' | 'verify' | 'assume'
  readonly onKeyspaceEventsSet: NonNullable<RedisStoreOptions['onKeyspaceEventsSet']>
  readonly heartbeatMs: number
  readonly topologyCheckMs: number
  readonly reconnectDelayMs: number
  readonly maxReconnectDelayMs: number
  readonly scanCount: number
  readonly revisionCacheSize: number
  readonly watchMemory: 'values' | 'lean'
  readonly connectionName: string
}

/** Parses `'host:port'` (IPv6 as `[::1]:6379`) or checks `{ host, port }`. */
export function parseAddress(address: unknown, what: string): HostPort {
  if (typeof address === 'string') {
    const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address.trim())
    const port = Number(match?.[3])
    const host = match?.[1] ?? match?.[2]
    if (host !== undefined && port > 0 && port < 65_536) return { host, port }
    throw new TypeError(`${what}: expected an address 'host:port', got ${JSON.stringify(address)}`)
  }
  if (typeof address === 'object' && address !== null) {
    const { host, port } = address as { host?: unknown; port?: unknown }
    if (
      typeof host === 'string' &&
      host !== '' &&
      typeof port === 'number' &&
      Number.isInteger(port) &&
      port > 0 &&
      port < 65_536
    ) {
      return { host, port }
    }
  }
  throw new TypeError(
    `${what}: expected an address 'host:port' or { host, port }, got ${JSON.stringify(address)}`,
  )
}

function watchMemory(value: unknown): Settings['watchMemory'] {
  if (value === undefined) return 'lean'
  if (value === 'values' || value === 'lean') return value
  throw new TypeError(
    `redis watchMemory: expected 'values' or 'lean', got ${JSON.stringify(value)}`,
  )
}

function keyspaceEvents(value: unknown): Settings['keyspaceEvents'] {
  if (value === undefined) return 'configure'
  if (value === 'configure' || value === 'verify' || value === 'assume') return value
  throw new TypeError(
    `redis keyspaceEvents: expected 'configure', 'verify' or 'assume', got ${JSON.stringify(value)}`,
  )
}

function positive(value: number | undefined, fallback: number, what: string): number {
  const result = value ?? fallback
  if (!Number.isInteger(result) || result < 1) {
    throw new TypeError(`redis ${what}: expected a positive integer, got ${String(value)}`)
  }
  return result
}

function millis(value: Duration | undefined, fallback: Duration, what: string): number {
  const ms = toMillis(value ?? fallback, `redis ${what}`)
  if (ms <= 0)
    throw new TypeError(`redis ${what}: expected a positive duration, got ${String(value)}`)
  return Math.ceil(ms)
}

/** Checks the options and applies the defaults; throws a TypeError that names the option. */
export function resolveOptions(options: RedisStoreOptions): Settings {
  if (typeof options !== 'object' || (options as unknown) === null) {
    throw new TypeError(
      `createRedisStore: expected an options object, got ${options === null ? 'null' : typeof options}`,
    )
  }
  const given = (['node', 'sentinel', 'cluster'] as const).filter(
    (mode) => options[mode] !== undefined,
  )
  if (given.length !== 1) {
    throw new TypeError(
      `createRedisStore: expected exactly one of node, sentinel or cluster, got ${given.length === 0 ? 'none' : given.join(' and ')}`,
    )
  }
  const target = resolveTarget(options)
  const db = options.db ?? 0
  if (!Number.isInteger(db) || db < 0) {
    throw new TypeError(`redis db: expected a non-negative integer, got ${String(options.db)}`)
  }
  if (target.mode === 'cluster' && db !== 0) {
    throw new TypeError(`redis db: a Redis Cluster has only database 0, got ${db}`)
  }
  const natMap: Record<string, HostPort> = {}
  for (const [from, to] of Object.entries(options.natMap ?? {})) {
    natMap[from] = parseAddress(to, `redis natMap['${from}']`)
  }
  return {
    target,
    db,
    natMap,
    connectTimeoutMs: millis(options.connectTimeout, '10s', 'connectTimeout'),
    commandTimeoutMs: millis(options.commandTimeout, '5s', 'commandTimeout'),
    maxValueBytes: positive(options.maxValueBytes, 512 * 1024 * 1024, 'maxValueBytes'),
    keyspaceEvents: keyspaceEvents(options.keyspaceEvents),
    onKeyspaceEventsSet: options.onKeyspaceEventsSet ?? (() => undefined),
    heartbeatMs: millis(options.heartbeatInterval, '2s', 'heartbeatInterval'),
    topologyCheckMs: millis(options.topologyCheckInterval, '1s', 'topologyCheckInterval'),
    reconnectDelayMs: millis(options.reconnectDelay, '100ms', 'reconnectDelay'),
    maxReconnectDelayMs: millis(options.maxReconnectDelay, '5s', 'maxReconnectDelay'),
    scanCount: positive(options.scanCount, 1000, 'scanCount'),
    revisionCacheSize: positive(options.revisionCacheSize, 100_000, 'revisionCacheSize'),
    watchMemory: watchMemory(options.watchMemory),
    connectionName: options.connectionName ?? 'rx-datasync',
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: options.password } : {}),
    ...(options.tls !== undefined ? { tls: options.tls } : {}),
  }
}

function resolveTarget(options: RedisStoreOptions): Target {
  const { node, sentinel, cluster } = options
  if (node !== undefined) return { mode: 'node', node: parseAddress(node, 'redis node') }
  if (sentinel !== undefined) {
    if (!Array.isArray(sentinel.sentinels) || sentinel.sentinels.length === 0) {
      throw new TypeError('redis sentinel.sentinels: expected at least one sentinel address')
    }
    if (typeof sentinel.masterName !== 'string' || sentinel.masterName === '') {
      throw new TypeError(
        `redis sentinel.masterName: expected the monitored master's name, got ${JSON.stringify(sentinel.masterName)}`,
      )
    }
    return {
      mode: 'sentinel',
      sentinels: sentinel.sentinels.map((a, i) =>
        parseAddress(a, `redis sentinel.sentinels[${i}]`),
      ),
      masterName: sentinel.masterName,
      ...(sentinel.sentinelPassword !== undefined
        ? { sentinelPassword: sentinel.sentinelPassword }
        : {}),
      ...(sentinel.sentinelUsername !== undefined
        ? { sentinelUsername: sentinel.sentinelUsername }
        : {}),
    }
  }
  if (cluster === undefined)
    throw new TypeError('createRedisStore: expected node, sentinel or cluster')
  if (!Array.isArray(cluster.nodes) || cluster.nodes.length === 0) {
    throw new TypeError('redis cluster.nodes: expected at least one node address')
  }
  const scaleReads = cluster.scaleReads ?? 'master'
  if (!['master', 'slave', 'all'].includes(scaleReads)) {
    throw new TypeError(
      `redis cluster.scaleReads: expected 'master', 'slave' or 'all', got ${JSON.stringify(scaleReads)}`,
    )
  }
  return {
    mode: 'cluster',
    nodes: cluster.nodes.map((a, i) => parseAddress(a, `redis cluster.nodes[${i}]`)),
    scaleReads,
    maxRedirects: positive(cluster.maxRedirects, 16, 'cluster.maxRedirects'),
  }
}
