import type { RedisOptions } from 'ioredis'
import { backoffDelay } from '../../internal/backoff.js'
import { Cluster, Redis } from './ioredis.js'
import type { HostPort, Settings } from './options.js'

/** ioredis options without `replyMapping` (which only RESP3 knows). */
type Options = Omit<RedisOptions, 'replyMapping'>

/** What a connection is for; watch connections are named after it. */
export type Role = 'main' | 'watch' | 'read'

/** Applies the NAT map to an address a server announced. */
export function mapAddress(settings: Settings, address: HostPort): HostPort {
  return settings.natMap[`${address.host}:${address.port}`] ?? address
}

/**
 * Options every connection of the store shares.
 *
 * `protocol`: ioredis 6 speaks RESP3 by default. The store pins RESP2 on its broker and reader
 * connections, so replies (CONFIG GET, SCAN, CLUSTER SLOTS, INFO) keep the same shapes on every
 * server version, Sentinel and Cluster included. A watch's subscriber speaks RESP3 (Redis 6 and
 * later, which the store requires): there a subscribed connection may run any command, and a
 * command's reply comes in order with the notifications pushed to it, so a value the watch reads
 * on its subscriber needs no barrier to be placed among the messages (see `session.ts`).
 *
 * `autoResubscribe: false`: a resubscription after a reconnect hides the gap during which
 * notifications were lost; the watch instead opens a new session and relists (P4).
 * `autoResendUnfulfilledCommands: false`: a write whose reply was lost must fail, not run twice
 * (a conditional transaction would report failure after it succeeded).
 */
function common(settings: Settings, role: Role): Options {
  return {
    protocol: role === 'watch' ? 3 : 2,
    lazyConnect: true,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    enableReadyCheck: true,
    connectTimeout: settings.connectTimeoutMs,
    commandTimeout: settings.commandTimeoutMs,
    maxRetriesPerRequest: 1,
    connectionName:
      role === 'main' ? settings.connectionName : `${settings.connectionName}:${role}`,
    ...(settings.username !== undefined ? { username: settings.username } : {}),
    ...(settings.password !== undefined ? { password: settings.password } : {}),
    ...(settings.tls !== undefined ? { tls: settings.tls } : {}),
  }
}

/** Where a connection goes: the node, or the Sentinel master (resolved on each connect). */
function destination(settings: Settings): Options {
  const target = settings.target
  if (target.mode === 'node') {
    return { host: target.node.host, port: target.node.port, db: settings.db }
  }
  if (target.mode === 'cluster') throw new TypeError('a Cluster connection needs an address')
  const sentinel = target
  return {
    sentinels: sentinel.sentinels.map(({ host, port }) => ({ host, port })),
    name: sentinel.masterName,
    role: 'master',
    db: settings.db,
    // ioredis subscribes to +switch-master on the sentinels and drops the connection as soon as
    // a failover is announced, instead of waiting for the old master to time out (ioredis#1314).
    failoverDetector: true,
    sentinelMaxConnections: 3,
    ...(Object.keys(settings.natMap).length > 0 ? { natMap: { ...settings.natMap } } : {}),
    ...(sentinel.sentinelPassword !== undefined
      ? { sentinelPassword: sentinel.sentinelPassword }
      : {}),
    ...(sentinel.sentinelUsername !== undefined
      ? { sentinelUsername: sentinel.sentinelUsername }
      : {}),
    ...(settings.tls !== undefined ? { enableTLSForSentinelMode: true } : {}),
  }
}

/**
 * The broker's connection: a `Redis` for a node or a Sentinel master, a `Cluster` otherwise. It
 * connects on first use and reconnects by itself with exponential backoff.
 */
export function createMainClient(settings: Settings): Redis | Cluster {
  const retryStrategy = (attempt: number) =>
    backoffDelay(
      { firstMs: settings.reconnectDelayMs, maxMs: settings.maxReconnectDelayMs },
      attempt,
    )
  // A demoted master answers writes with READONLY: reconnect, which finds the new master.
  const reconnectOnError = (error: Error) => error.message.startsWith('READONLY')
  const target = settings.target
  if (target.mode === 'cluster') {
    const cluster = target
    return new Cluster(
      cluster.nodes.map(({ host, port }) => ({ host, port })),
      {
        lazyConnect: true,
        scaleReads: cluster.scaleReads,
        maxRedirections: cluster.maxRedirects,
        clusterRetryStrategy: retryStrategy,
        enableOfflineQueue: true,
        // Failovers are found by MOVED replies and by this periodic refresh.
        slotsRefreshInterval: 2_000,
        ...(Object.keys(settings.natMap).length > 0 ? { natMap: { ...settings.natMap } } : {}),
        redisOptions: { ...common(settings, 'main'), reconnectOnError },
      },
    )
  }
  return new Redis({
    ...common(settings, 'main'),
    ...destination(settings),
    retryStrategy,
    reconnectOnError,
  })
}

/**
 * A connection of a watch session: to `address` (a Cluster master), or to the node or Sentinel
 * master of the settings. It never reconnects by itself: a watch session ends with its first
 * lost connection and the next session starts with fresh ones and a relist.
 */
export function createSessionConnection(settings: Settings, role: Role, address?: HostPort): Redis {
  return new Redis({
    ...common(settings, role),
    ...(address !== undefined ? { ...mapAddress(settings, address) } : destination(settings)),
    retryStrategy: () => null,
    enableOfflineQueue: true,
  })
}

/**
 * Resolves once the connection has ended (or was never opened). Called after `disconnect()`: a
 * connection that was waiting to reconnect has no socket left, and ioredis never reports its
 * end (it stays 'reconnecting'), so it counts as ended.
 */
export function ended(connection: Redis | Cluster): Promise<void> {
  const status = connection.status
  if (status === 'end' || status === 'wait' || status === 'reconnecting') return Promise.resolve()
  return new Promise((resolve) => {
    connection.once('end', () => {
      resolve()
    })
  })
}
