/**
 * Real Redis servers (Debian's redis-server, redis-sentinel, redis-cli) for integration tests: a
 * single server, a master with replicas watched by sentinels, and a six-node cluster. Every node
 * listens on a free loopback port and keeps its files in its own temporary directory.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import { ensureBinary } from './install.js'
import { LOOPBACK, freePorts } from './ports.js'
import { ServerProcess, type ReadinessProbe } from './process.js'
import {
  parseInfo,
  redisCommand,
  redisInfo,
  type RedisArg,
  type RedisTarget,
  type RespValue,
} from './resp.js'
import { pollUntil } from './wait.js'

export interface RedisOptions {
  /** Default a free port. */
  readonly port?: number
  /** Label for the data directory and log. Default `redis`. */
  readonly name?: string
  /** `--notify-keyspace-events`, e.g. `KEA`. */
  readonly notifyKeyspaceEvents?: string
  /** `--replicaof 127.0.0.1 <port>`. */
  readonly replicaOf?: number
  /** Extra command-line arguments, e.g. `['--requirepass', 'secret']` (then pass `ready` too). */
  readonly extraArgs?: readonly string[]
  /** Readiness timeout (ms). Default 30 000. */
  readonly readyTimeoutMs?: number
  /** Replaces the default readiness probe (PING answered with PONG). */
  readonly ready?: ReadinessProbe
  /**
   * `--requirepass` (and `--masterauth`, for replicas and Cluster nodes); the harness's own
   * commands (readiness, `command`, INFO) authenticate with it.
   */
  readonly password?: string
  /**
   * TLS on a second port (`tlsPort`) with these files; the plain `port` stays open on loopback
   * for the harness's own commands. `authClients` (default false) requires a client certificate.
   */
  readonly tls?: RedisTlsFiles
}

/** The certificate files of a TLS port (see test/support/tls.ts for generated ones). */
export interface RedisTlsFiles {
  readonly certFile: string
  readonly keyFile: string
  readonly caFile: string
  readonly authClients?: boolean
}

/**
 * PING must answer PONG, and INFO's process_id must be this server's pid (so that another
 * process that happens to hold the port is not taken for it).
 */
function pingProbe(port: number, password?: string): ReadinessProbe {
  return async (signal, server) => {
    const target = {
      port,
      signal,
      timeoutMs: 1_000,
      ...(password === undefined ? {} : { password }),
    }
    if ((await redisCommand(target, 'PING')) !== 'PONG') return false
    return (await redisInfo(target, 'server')).process_id === String(server.pid)
  }
}

export class RedisServer extends ServerProcess {
  readonly port: number
  readonly host = LOOPBACK
  /** `redis://127.0.0.1:<port>` */
  readonly url: string
  /** The TLS port, when started with `tls`. */
  readonly tlsPort: number | undefined
  readonly password: string | undefined

  constructor(options: RedisOptions & { readonly port: number; readonly tlsPort?: number }) {
    const { port, password, tls, tlsPort } = options
    if (tls !== undefined && tlsPort === undefined) {
      throw new TypeError('RedisServer: tls needs a tlsPort (startRedis picks a free one)')
    }
    super({
      binary: 'redis-server',
      name: options.name ?? 'redis',
      args: (dir) => [
        '--port',
        String(port),
        '--bind',
        LOOPBACK,
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--logfile',
        '',
        // Full syncs start at once instead of after the default 5 s wait for more replicas.
        '--repl-diskless-sync-delay',
        '0',
        ...(options.notifyKeyspaceEvents !== undefined
          ? ['--notify-keyspace-events', options.notifyKeyspaceEvents]
          : []),
        ...(options.replicaOf !== undefined
          ? ['--replicaof', LOOPBACK, String(options.replicaOf)]
          : []),
        ...(password === undefined ? [] : ['--requirepass', password, '--masterauth', password]),
        ...(tls === undefined || tlsPort === undefined
          ? []
          : [
              '--tls-port',
              String(tlsPort),
              '--tls-cert-file',
              tls.certFile,
              '--tls-key-file',
              tls.keyFile,
              '--tls-ca-cert-file',
              tls.caFile,
              '--tls-auth-clients',
              tls.authClients === true ? 'yes' : 'no',
              '--tls-replication',
              'no',
            ]),
        ...(options.extraArgs ?? []),
      ],
      ready: options.ready ?? pingProbe(port, password),
      ...(options.readyTimeoutMs !== undefined ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
    })
    this.port = port
    this.url = `redis://${LOOPBACK}:${port}`
    this.tlsPort = tlsPort
    this.password = password
  }

  /** Sends one command over a fresh raw connection (see redisCommand), authenticated. */
  command(...args: RedisArg[]): Promise<RespValue> {
    return redisCommand(this.target, ...args)
  }

  /** Where the harness's own commands go: the plain port, with the password. */
  get target(): RedisTarget {
    return { port: this.port, ...(this.password === undefined ? {} : { password: this.password }) }
  }
}

async function startOrCleanup<T extends ServerProcess>(server: T): Promise<T> {
  try {
    await server.start()
    return server
  } catch (err) {
    await server.cleanup().catch(() => undefined)
    throw err
  }
}

async function startAllOrCleanup<T extends ServerProcess>(servers: readonly T[]): Promise<T[]> {
  const results = await Promise.allSettled(servers.map((s) => s.start()))
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed) {
    await Promise.all(servers.map((s) => s.cleanup().catch(() => undefined)))
    throw failed.reason
  }
  return [...servers]
}

/** Starts one redis-server and waits until it answers PING. */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const [free, freeTls] = await freePorts(options.tls === undefined ? 1 : 2)
  const port = options.port ?? free!
  const tlsPort = options.tls === undefined ? undefined : freeTls!
  return startOrCleanup(
    new RedisServer({ ...options, port, ...(tlsPort === undefined ? {} : { tlsPort }) }),
  )
}

// ---------------------------------------------------------------------------------------------
// Sentinel

export class SentinelServer extends ServerProcess {
  readonly port: number
  readonly host = LOOPBACK

  constructor(options: {
    readonly port: number
    readonly name: string
    readonly masterName: string
    readonly masterPort: number
    readonly quorum: number
    readonly downAfterMs: number
    readonly failoverTimeoutMs: number
    readonly readyTimeoutMs?: number
    /** The monitored servers' password (`sentinel auth-pass`). */
    readonly masterPassword?: string
  }) {
    const { port, masterName } = options
    super({
      binary: 'redis-sentinel',
      name: options.name,
      // redis-sentinel rewrites its config file, so it lives in the (writable) data directory.
      args: (dir) => [path.join(dir, 'sentinel.conf')],
      setup: (dir) =>
        fs.writeFile(
          path.join(dir, 'sentinel.conf'),
          [
            `port ${port}`,
            `bind ${LOOPBACK}`,
            `dir ${dir}`,
            `logfile ""`,
            `sentinel monitor ${masterName} ${LOOPBACK} ${options.masterPort} ${options.quorum}`,
            `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs}`,
            `sentinel failover-timeout ${masterName} ${options.failoverTimeoutMs}`,
            ...(options.masterPassword === undefined
              ? []
              : [`sentinel auth-pass ${masterName} ${options.masterPassword}`]),
            '',
          ].join('\n'),
        ),
      ready: pingProbe(port),
      ...(options.readyTimeoutMs !== undefined ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
    })
    this.port = port
  }

  /** Sends one command over a fresh raw connection (see redisCommand). */
  command(...args: RedisArg[]): Promise<RespValue> {
    return redisCommand(this.port, ...args)
  }

  /** `SENTINEL get-master-addr-by-name <masterName>`, or undefined when unknown. */
  async masterAddress(masterName: string): Promise<{ host: string; port: number } | undefined> {
    const reply = await this.command('SENTINEL', 'get-master-addr-by-name', masterName)
    if (!Array.isArray(reply) || typeof reply[0] !== 'string' || typeof reply[1] !== 'string') {
      return undefined
    }
    return { host: reply[0], port: Number(reply[1]) }
  }
}

export interface SentinelSetupOptions {
  /** Default `mymaster`. */
  readonly masterName?: string
  /** Replicas of the master. Default 2. */
  readonly replicas?: number
  /** Sentinel processes. Default 3. */
  readonly sentinels?: number
  /** Default 2. */
  readonly quorum?: number
  /** `sentinel down-after-milliseconds`. Default 1 000. */
  readonly downAfterMs?: number
  /** `sentinel failover-timeout`. Default 5 000. */
  readonly failoverTimeoutMs?: number
  /** Extra arguments for the master and the replicas. */
  readonly redisExtraArgs?: readonly string[]
  /** The master's and replicas' password (the sentinels are told it; they have none). */
  readonly password?: string
  /**
   * Wait until every sentinel knows every replica and every other sentinel (so a failover can
   * be authorized right away). Default true.
   */
  readonly waitForDiscovery?: boolean
  /** Bound for each wait (ms). Default 30 000. */
  readonly timeoutMs?: number
}

export interface SentinelSetup {
  readonly masterName: string
  /** The master at start (after a failover it is no longer the master). */
  readonly master: RedisServer
  readonly replicas: readonly RedisServer[]
  readonly sentinels: readonly SentinelServer[]
  /** Every data node, the initial master first. */
  readonly nodes: readonly RedisServer[]
  /** `{ host, port }` of every sentinel, for a sentinel-aware client. */
  readonly sentinelAddresses: readonly { host: string; port: number }[]
  /** The master as reported by the first sentinel that answers. */
  currentMaster(): Promise<{ host: string; port: number }>
  /** Cleans up every process (kill, remove directories). */
  cleanup(): Promise<void>
}

/**
 * Starts a master, replicas (`--replicaof`) and sentinels monitoring it, and waits until the
 * replicas are in sync and (by default) the sentinels have discovered each other and the replicas.
 */
export async function startSentinelSetup(
  options: SentinelSetupOptions = {},
): Promise<SentinelSetup> {
  const masterName = options.masterName ?? 'mymaster'
  const replicaCount = options.replicas ?? 2
  const sentinelCount = options.sentinels ?? 3
  const timeoutMs = options.timeoutMs ?? 30_000
  const extraArgs = options.redisExtraArgs ?? []
  const ports = await freePorts(1 + replicaCount + sentinelCount)
  const all: ServerProcess[] = []
  const cleanup = async (): Promise<void> => {
    await Promise.all(all.map((s) => s.cleanup()))
  }
  try {
    const password = options.password
    const auth = password === undefined ? {} : { password }
    const master = new RedisServer({ port: ports[0]!, name: 'redis-master', extraArgs, ...auth })
    all.push(master)
    await master.start()
    const replicas = Array.from(
      { length: replicaCount },
      (_, i) =>
        new RedisServer({
          port: ports[1 + i]!,
          name: `redis-replica${i}`,
          replicaOf: master.port,
          extraArgs,
          ...auth,
        }),
    )
    all.push(...replicas)
    await startAllOrCleanup(replicas)
    await Promise.all(
      replicas.map((r) =>
        pollUntil(
          async () => (await redisInfo(r.target, 'replication')).master_link_status === 'up',
          {
            timeoutMs,
            description: `replica on port ${r.port} to sync with the master`,
          },
        ),
      ),
    )
    const sentinels = Array.from(
      { length: sentinelCount },
      (_, i) =>
        new SentinelServer({
          port: ports[1 + replicaCount + i]!,
          name: `redis-sentinel${i}`,
          masterName,
          masterPort: master.port,
          quorum: options.quorum ?? 2,
          downAfterMs: options.downAfterMs ?? 1_000,
          failoverTimeoutMs: options.failoverTimeoutMs ?? 5_000,
          ...(password === undefined ? {} : { masterPassword: password }),
        }),
    )
    all.push(...sentinels)
    await startAllOrCleanup(sentinels)
    if (options.waitForDiscovery ?? true) {
      await Promise.all(
        sentinels.map((s) =>
          pollUntil(
            async () => {
              const known = await s.command('SENTINEL', 'replicas', masterName)
              const peers = await s.command('SENTINEL', 'sentinels', masterName)
              return (
                Array.isArray(known) &&
                known.length >= replicaCount &&
                Array.isArray(peers) &&
                peers.length >= sentinelCount - 1
              )
            },
            {
              timeoutMs,
              description: `sentinel on port ${s.port} to discover replicas and sentinels`,
            },
          ),
        ),
      )
    }
    return {
      masterName,
      master,
      replicas,
      sentinels,
      nodes: [master, ...replicas],
      sentinelAddresses: sentinels.map((s) => ({ host: s.host, port: s.port })),
      currentMaster: async () => {
        let lastError: unknown
        for (const s of sentinels) {
          if (!s.running || s.isPaused) continue
          try {
            const addr = await s.masterAddress(masterName)
            if (addr) return addr
          } catch (err) {
            lastError = err
          }
        }
        throw new Error(`no sentinel reports a master for ${masterName}`, { cause: lastError })
      },
      cleanup,
    }
  } catch (err) {
    await cleanup().catch(() => undefined)
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// Cluster

export interface RedisClusterOptions {
  /** Master nodes (at least 3). Default 3. */
  readonly masters?: number
  /** Replicas per master. Default 1. */
  readonly replicasPerMaster?: number
  /** `--cluster-node-timeout` (ms). Default 1 000. */
  readonly nodeTimeoutMs?: number
  /** Extra arguments for every node. */
  readonly extraArgs?: readonly string[]
  /** Every node's password (`requirepass` and `masterauth`). */
  readonly password?: string
  /** Bound for `redis-cli --cluster create` and for the cluster to become ok (ms). Default 60 000. */
  readonly timeoutMs?: number
}

export interface RedisCluster {
  readonly nodes: readonly RedisServer[]
  readonly ports: readonly number[]
  /** `{ host, port }` of every node, for a cluster-aware client. */
  readonly startupNodes: readonly { host: string; port: number }[]
  /** Cleans up every node (kill, remove directories). */
  cleanup(): Promise<void>
}

function runRedisCli(
  binary: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    })
    const chunks: Buffer[] = []
    child.stdout.on('data', (c: Buffer) => chunks.push(c))
    child.stderr.on('data', (c: Buffer) => chunks.push(c))
    child.once('error', reject)
    child.once('close', (code) => {
      resolve({ code, output: Buffer.concat(chunks).toString('utf8') })
    })
  })
}

async function clusterNodeReady(
  port: RedisTarget,
  total: number,
  replicas: number,
): Promise<boolean> {
  const info = parseInfo(String(await redisCommand(port, 'CLUSTER', 'INFO')))
  if (
    info.cluster_state !== 'ok' ||
    info.cluster_slots_ok !== '16384' ||
    Number(info.cluster_known_nodes) !== total
  ) {
    return false
  }
  const nodes = String(await redisCommand(port, 'CLUSTER', 'NODES'))
  const lines = nodes.split('\n').filter((l) => l.trim() !== '')
  const replicaLines = lines.filter((l) => (l.split(' ')[2] ?? '').split(',').includes('slave'))
  if (replicaLines.length !== replicas) return false
  const flags = (lines.find((l) => l.split(' ')[2]?.includes('myself')) ?? '').split(' ')[2] ?? ''
  if (flags.includes('slave')) {
    return (await redisInfo(port, 'replication')).master_link_status === 'up'
  }
  return true
}

/**
 * Starts `masters * (1 + replicasPerMaster)` nodes with cluster mode on, joins them with
 * `redis-cli --cluster create ... --cluster-yes`, and waits until every node reports
 * `cluster_state:ok` with all slots assigned, knows every node and sees every replica, and every
 * replica's link to its master is up.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3
  const replicasPerMaster = options.replicasPerMaster ?? 1
  const total = masters * (1 + replicasPerMaster)
  const timeoutMs = options.timeoutMs ?? 60_000
  const redisCli = await ensureBinary('redis-cli')
  const ports = await freePorts(total)
  const nodes = ports.map(
    (port, i) =>
      new RedisServer({
        port,
        name: `redis-cluster${i}`,
        extraArgs: [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          String(options.nodeTimeoutMs ?? 1_000),
          ...(options.extraArgs ?? []),
        ],
        ...(options.password === undefined ? {} : { password: options.password }),
      }),
  )
  const cleanup = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.cleanup()))
  }
  await startAllOrCleanup(nodes)
  try {
    const args = [
      '--cluster',
      'create',
      ...ports.map((p) => `${LOOPBACK}:${p}`),
      '--cluster-replicas',
      String(replicasPerMaster),
      '--cluster-yes',
      ...(options.password === undefined ? [] : ['-a', options.password, '--no-auth-warning']),
    ]
    const result = await runRedisCli(redisCli, args, timeoutMs)
    if (result.code !== 0) {
      throw new Error(
        `redis-cli ${args.join(' ')} exited with ${result.code}\n${result.output.trimEnd().split('\n').slice(-30).join('\n')}`,
      )
    }
    await Promise.all(
      nodes.map((n) =>
        pollUntil(() => clusterNodeReady(n.target, total, masters * replicasPerMaster), {
          timeoutMs,
          description: `cluster node on port ${n.port} to report cluster_state:ok`,
        }),
      ),
    )
  } catch (err) {
    await cleanup().catch(() => undefined)
    throw err
  }
  return {
    nodes,
    ports,
    startupNodes: nodes.map((n) => ({ host: n.host, port: n.port })),
    cleanup,
  }
}
