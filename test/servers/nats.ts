/**
 * Real NATS servers with JetStream (Debian's nats-server, 2.9) for integration tests: one server,
 * or a cluster of several, each on free loopback ports (client, monitoring and, in a cluster,
 * routes) with its JetStream store in its own temporary directory. The machine's own NATS (port
 * 4222) is never touched: every port here is a free one.
 *
 * A server is a {@link ServerProcess}: stop, kill -9, SIGSTOP (`pause`), `resume` and `restart`
 * (same ports, same store directory: the streams come back) work as for etcd and Redis.
 */
import fs from 'node:fs/promises'
import path from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { httpJson } from './http.js'
import { LOOPBACK, freePorts } from './ports.js'
import { ServerProcess, type ReadinessProbe } from './process.js'
import { pollUntil } from './wait.js'

/** Debian's nats-server; `ensureBinary` finds it in /usr/sbin. */
const BINARY = 'nats-server'

export interface NatsOptions {
  /** `server_name`; default a unique one (the readiness probe checks it). */
  readonly name?: string
  /** Client port; default a free one. */
  readonly port?: number
  /**
   * Extra configuration appended to the generated file (nats-server's own format), e.g. an
   * `authorization { ... }` block or a `tls { ... }` block.
   */
  readonly extraConfig?: string
  /** Readiness timeout (ms). Default 30 000. */
  readonly readyTimeoutMs?: number
  /** Replaces the default readiness probe (`/healthz` ok and `/varz` naming this server). */
  readonly ready?: ReadinessProbe
}

interface ServerConfig extends NatsOptions {
  readonly name: string
  readonly port: number
  readonly monitorPort: number
  /** In a cluster: this server's route port, the cluster's name and every route port. */
  readonly cluster?: {
    readonly name: string
    readonly port: number
    readonly routes: readonly number[]
  }
}

function uniqueName(label: string): string {
  return `${label}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`
}

/** The server's configuration file (nats-server's format, which takes JSON-style strings). */
function configText(config: ServerConfig, dir: string): string {
  const lines = [
    `server_name: ${JSON.stringify(config.name)}`,
    `listen: "${LOOPBACK}:${config.port}"`,
    `http: "${LOOPBACK}:${config.monitorPort}"`,
    `jetstream {`,
    `  store_dir: ${JSON.stringify(path.join(dir, 'jetstream'))}`,
    `  max_memory_store: 268435456`,
    `  max_file_store: 2147483648`,
    `}`,
  ]
  if (config.cluster !== undefined) {
    const { name, port, routes } = config.cluster
    lines.push(
      `cluster {`,
      `  name: ${JSON.stringify(name)}`,
      `  listen: "${LOOPBACK}:${port}"`,
      `  routes: [${routes.map((route) => `"nats-route://${LOOPBACK}:${route}"`).join(', ')}]`,
      `}`,
    )
  }
  if (config.extraConfig !== undefined) lines.push(config.extraConfig)
  return `${lines.join('\n')}\n`
}

/** `/healthz` answers ok (JetStream up) and `/varz` names this server (not another on the port). */
function healthProbe(monitorUrl: string, name: string): ReadinessProbe {
  return async (signal) => {
    const health = (await httpJson(`${monitorUrl}/healthz`, { signal, timeoutMs: 1_000 })) as {
      status?: unknown
    }
    if (health.status !== 'ok') return false
    const varz = (await httpJson(`${monitorUrl}/varz`, { signal, timeoutMs: 1_000 })) as {
      server_name?: unknown
    }
    return varz.server_name === name
  }
}

export class NatsServer extends ServerProcess {
  readonly serverName: string
  readonly port: number
  readonly host = LOOPBACK
  /** `nats://127.0.0.1:<port>`, what a NATS client takes. */
  readonly url: string
  /** `http://127.0.0.1:<monitorPort>`, the monitoring endpoint (`/varz`, `/jsz`, `/connz`). */
  readonly monitorUrl: string
  /** The route port in a cluster, undefined for a single server. */
  readonly clusterPort: number | undefined

  constructor(config: ServerConfig) {
    const monitorUrl = `http://${LOOPBACK}:${config.monitorPort}`
    super({
      binary: BINARY,
      name: `nats-${config.name.split('-')[0] ?? 'server'}`,
      setup: (dir) => fs.writeFile(path.join(dir, 'nats.conf'), configText(config, dir)),
      args: (dir) => ['-c', path.join(dir, 'nats.conf')],
      ready: config.ready ?? healthProbe(monitorUrl, config.name),
      ...(config.readyTimeoutMs !== undefined ? { readyTimeoutMs: config.readyTimeoutMs } : {}),
    })
    this.serverName = config.name
    this.port = config.port
    this.url = `nats://${LOOPBACK}:${config.port}`
    this.monitorUrl = monitorUrl
    this.clusterPort = config.cluster?.port
  }

  /** The client connections the server holds now (from `/connz`). */
  async connections(): Promise<number> {
    const connz = (await httpJson(`${this.monitorUrl}/connz`, { timeoutMs: 2_000 })) as {
      num_connections?: number
    }
    return connz.num_connections ?? 0
  }

  /** Whether a client connection named `name` (its `name` option) is connected to this server. */
  async hasConnection(name: string): Promise<boolean> {
    const connz = (await httpJson(`${this.monitorUrl}/connz`, { timeoutMs: 2_000 })) as {
      connections?: { name?: string }[]
    }
    return (connz.connections ?? []).some((connection) => connection.name === name)
  }

  /** JetStream's view from `/jsz`: the meta leader's name (cluster) and the stream count. */
  async jetstream(): Promise<{
    readonly metaLeader: string | undefined
    readonly streams: number
  }> {
    const jsz = (await httpJson(`${this.monitorUrl}/jsz`, { timeoutMs: 2_000 })) as {
      streams?: number
      meta_cluster?: { leader?: string }
    }
    return { metaLeader: jsz.meta_cluster?.leader, streams: jsz.streams ?? 0 }
  }
}

/** Starts one nats-server with JetStream and waits until `/healthz` says ok. */
export async function startNats(options: NatsOptions = {}): Promise<NatsServer> {
  const [clientFree, monitorPort] = await freePorts(2)
  const server = new NatsServer({
    ...options,
    name: options.name ?? uniqueName('single'),
    port: options.port ?? clientFree!,
    monitorPort: monitorPort!,
  })
  try {
    return await server.start()
  } catch (err) {
    await server.cleanup().catch(() => undefined)
    throw err
  }
}

export interface NatsCluster {
  readonly servers: readonly NatsServer[]
  /** The running, unpaused server a client connection named `name` is connected to. */
  connectedTo(name: string): Promise<NatsServer | undefined>
  /** Every server's client URL. */
  readonly urls: readonly string[]
  /** The server that leads JetStream's meta group now (asks the running, unpaused servers). */
  metaLeader(): Promise<NatsServer>
  /** Waits until the running servers agree on a meta leader among them. */
  settled(timeoutMs?: number): Promise<NatsServer>
  /** Cleans up every server (kill, remove store directories). */
  cleanup(): Promise<void>
}

export interface NatsClusterOptions {
  /** Appended to every server's configuration. */
  readonly extraConfig?: string
  /** Readiness timeout per server (ms). Default 60 000. */
  readonly readyTimeoutMs?: number
}

/**
 * Starts a cluster of `size` servers routed to each other, with JetStream clustered over them,
 * and waits until every server is healthy and a JetStream meta leader is elected (so a stream
 * with `size` replicas can be created at once).
 */
export async function startNatsCluster(
  size = 3,
  options: NatsClusterOptions = {},
): Promise<NatsCluster> {
  const ports = await freePorts(size * 3)
  const clusterName = uniqueName('cluster')
  const routes = ports.slice(size * 2)
  const servers = Array.from(
    { length: size },
    (_, i) =>
      new NatsServer({
        name: uniqueName(`n${i}`),
        port: ports[i]!,
        monitorPort: ports[size + i]!,
        cluster: { name: clusterName, port: routes[i]!, routes },
        readyTimeoutMs: options.readyTimeoutMs ?? 60_000,
        ...(options.extraConfig !== undefined ? { extraConfig: options.extraConfig } : {}),
      }),
  )
  const cleanup = async (): Promise<void> => {
    await Promise.all(servers.map((server) => server.cleanup()))
  }
  // All servers start together: JetStream is not healthy on any of them before a meta leader.
  const started = await Promise.allSettled(servers.map((server) => server.start()))
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed) {
    await cleanup().catch(() => undefined)
    throw failed.reason
  }
  const cluster: NatsCluster = {
    servers,
    urls: servers.map((server) => server.url),
    metaLeader: () => metaLeader(servers),
    connectedTo: async (name) => {
      const live = servers.filter((server) => server.running && !server.isPaused)
      const found = await Promise.all(
        live.map((server) => server.hasConnection(name).catch(() => false)),
      )
      return live.find((_, i) => found[i])
    },
    settled: (timeoutMs = 60_000) =>
      pollUntil(() => metaLeader(servers).catch(() => undefined), {
        timeoutMs,
        description: 'the NATS cluster to agree on a JetStream meta leader',
      }),
    cleanup,
  }
  try {
    await cluster.settled()
  } catch (err) {
    await cleanup().catch(() => undefined)
    throw err
  }
  return cluster
}

/** The running server all running, unpaused servers name as JetStream meta leader. */
async function metaLeader(servers: readonly NatsServer[]): Promise<NatsServer> {
  const live = servers.filter((server) => server.running && !server.isPaused)
  const leaders = await Promise.all(
    live.map((server) => server.jetstream().then((jsz) => jsz.metaLeader)),
  )
  const first = leaders[0]
  const leader = live.find((server) => server.serverName === first)
  if (first === undefined || leader === undefined || leaders.some((name) => name !== first)) {
    throw new Error(`no agreed JetStream meta leader among the running servers: ${leaders.join()}`)
  }
  return leader
}

/** Store options for tests: short timeouts and heartbeats, so a fault heals within the suite's bounds. */
export const NATS_TEST_TIMINGS = {
  requestTimeout: '3s',
  connectTimeout: '2s',
  reconnectTimeWait: '200ms',
  pingInterval: '2s',
  heartbeat: '1s',
  retryDelay: '50ms',
  maxRetryDelay: '1s',
} as const

// ---------------------------------------------------------------------------------------------
// Raw client helpers for tests: buckets made and removed without the store under test.

/** A raw NATS connection to `servers`, for test set-up (closed by the caller). */
export async function natsConnect(servers: readonly string[]): Promise<NatsConnection> {
  return connect({
    servers: [...servers],
    name: 'rx-datasync-test-admin',
    maxReconnectAttempts: -1,
  })
}

/** Creates the KV bucket `name` (one value per key) with `replicas` copies; resolves when made. */
export async function createNatsBucket(
  servers: readonly string[],
  name: string,
  options: { readonly replicas?: number; readonly history?: number } = {},
): Promise<void> {
  const nc = await natsConnect(servers)
  try {
    await new Kvm(nc).create(name, {
      replicas: options.replicas ?? 1,
      history: options.history ?? 1,
    })
  } finally {
    await nc.close()
  }
}

/** Deletes the KV bucket `name` (its stream), if it exists. */
export async function deleteNatsBucket(servers: readonly string[], name: string): Promise<void> {
  const nc = await natsConnect(servers)
  try {
    const jsm = await jetstreamManager(nc)
    await jsm.streams.delete(`KV_${name}`).catch(() => false)
  } finally {
    await nc.close()
  }
}
