/**
 * Real etcd servers (Debian's etcd-server, etcd 3.4) for integration tests: one member, or a
 * cluster of several, each on free loopback ports in its own temporary data directory.
 */
import { httpJson } from './http.js'
import { LOOPBACK, freePorts } from './ports.js'
import { ServerProcess, type ReadinessProbe } from './process.js'

export interface EtcdOptions {
  /** Member name (`--name`). Default `default`. */
  readonly name?: string
  /** Client port; default a free one. */
  readonly clientPort?: number
  /** Peer port; default a free one. */
  readonly peerPort?: number
  /** Extra command-line flags, e.g. `['--auto-compaction-retention', '1']` or TLS flags. */
  readonly extraArgs?: readonly string[]
  /** Extra environment variables (e.g. `ETCD_UNSUPPORTED_ARCH` on other architectures). */
  readonly env?: Readonly<Record<string, string>>
  /** Readiness timeout (ms). Default 30 000. */
  readonly readyTimeoutMs?: number
  /** Replaces the default readiness probe (needed e.g. when TLS flags make the client URL https). */
  readonly ready?: ReadinessProbe
}

interface MemberConfig extends EtcdOptions {
  readonly name: string
  readonly clientPort: number
  readonly peerPort: number
  readonly initialCluster: string
  readonly clusterToken: string
  readonly fastElection?: boolean
}

/** True when `${clientUrl}/health` answers `{"health":"true"}`. */
export async function etcdHealthy(clientUrl: string, signal?: AbortSignal): Promise<boolean> {
  const body = (await httpJson(`${clientUrl}/health`, signal ? { signal } : {})) as {
    health?: unknown
  }
  return body.health === 'true' || body.health === true
}

export class EtcdServer extends ServerProcess {
  /** The member name (`--name`). */
  readonly memberName: string
  readonly clientPort: number
  readonly peerPort: number
  /** `http://127.0.0.1:<clientPort>` */
  readonly clientUrl: string
  /** `http://127.0.0.1:<peerPort>` */
  readonly peerUrl: string

  constructor(config: MemberConfig) {
    const clientUrl = `http://${LOOPBACK}:${config.clientPort}`
    const peerUrl = `http://${LOOPBACK}:${config.peerPort}`
    super({
      binary: 'etcd',
      name: `etcd-${config.name}`,
      args: (dir) => [
        '--name',
        config.name,
        '--data-dir',
        `${dir}/data`,
        '--listen-client-urls',
        clientUrl,
        '--advertise-client-urls',
        clientUrl,
        '--listen-peer-urls',
        peerUrl,
        '--initial-advertise-peer-urls',
        peerUrl,
        '--initial-cluster',
        config.initialCluster,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        config.clusterToken,
        '--logger',
        'zap',
        '--log-outputs',
        'stderr',
        ...(config.fastElection === true
          ? // A lone member has no peer to miss heartbeats from: a short election timeout only
            // makes a restart elect itself sooner (the default waits about 1-2 s).
            ['--heartbeat-interval', '20', '--election-timeout', '200']
          : []),
        ...(config.extraArgs ?? []),
      ],
      ready: config.ready ?? ((signal) => etcdHealthy(clientUrl, signal)),
      ...(config.env ? { env: config.env } : {}),
      ...(config.readyTimeoutMs !== undefined ? { readyTimeoutMs: config.readyTimeoutMs } : {}),
    })
    this.memberName = config.name
    this.clientPort = config.clientPort
    this.peerPort = config.peerPort
    this.clientUrl = clientUrl
    this.peerUrl = peerUrl
  }

  /** The client URLs to give an etcd client: `[clientUrl]`. */
  get endpoints(): string[] {
    return [this.clientUrl]
  }
}

function clusterToken(): string {
  return `rx-datasync-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
}

/** Starts one etcd member and waits until `/health` says true. */
export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdServer> {
  const [clientFree, peerFree] = await freePorts(2)
  const name = options.name ?? 'default'
  const peerPort = options.peerPort ?? peerFree!
  const server = new EtcdServer({
    ...options,
    name,
    clientPort: options.clientPort ?? clientFree!,
    peerPort,
    initialCluster: `${name}=http://${LOOPBACK}:${peerPort}`,
    clusterToken: clusterToken(),
    fastElection: true,
  })
  try {
    return await server.start()
  } catch (err) {
    await server.cleanup().catch(() => undefined)
    throw err
  }
}

export interface EtcdCluster {
  readonly members: readonly EtcdServer[]
  /** Every member's client URL. */
  readonly endpoints: readonly string[]
  /** The member that is the raft leader now (asks each running member). */
  leader(): Promise<EtcdServer>
  /** Cleans up every member (kill, remove data directories). */
  cleanup(): Promise<void>
}

export interface EtcdClusterOptions {
  readonly extraArgs?: readonly string[]
  readonly env?: Readonly<Record<string, string>>
  /** Readiness timeout per member (ms). Default 60 000. */
  readonly readyTimeoutMs?: number
}

/**
 * Starts a cluster of `size` members (`--initial-cluster-state new`, a unique
 * `--initial-cluster-token`, distinct client and peer ports) and waits until every member's
 * `/health` says true, which needs an elected leader.
 */
export async function startEtcdCluster(
  size = 3,
  options: EtcdClusterOptions = {},
): Promise<EtcdCluster> {
  const ports = await freePorts(size * 2)
  const token = clusterToken()
  const names = Array.from({ length: size }, (_, i) => `etcd${i}`)
  const initialCluster = names.map((n, i) => `${n}=http://${LOOPBACK}:${ports[size + i]}`).join(',')
  const members = names.map(
    (name, i) =>
      new EtcdServer({
        name,
        clientPort: ports[i]!,
        peerPort: ports[size + i]!,
        initialCluster,
        clusterToken: token,
        readyTimeoutMs: options.readyTimeoutMs ?? 60_000,
        ...(options.extraArgs ? { extraArgs: options.extraArgs } : {}),
        ...(options.env ? { env: options.env } : {}),
      }),
  )
  const cleanup = async (): Promise<void> => {
    await Promise.all(members.map((m) => m.cleanup()))
  }
  // All members must start together: none is healthy before a quorum has elected a leader.
  const started = await Promise.allSettled(members.map((m) => m.start()))
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed) {
    await cleanup().catch(() => undefined)
    throw failed.reason
  }
  return {
    members,
    endpoints: members.map((m) => m.clientUrl),
    leader: () => etcdLeader(members),
    cleanup,
  }
}

/**
 * The member that is raft leader, from `/v3/maintenance/status` of the running (not paused)
 * members. Throws when none of them knows a leader that is among them.
 */
export async function etcdLeader(members: readonly EtcdServer[]): Promise<EtcdServer> {
  type Status = { leader?: string; header?: { member_id?: string } }
  const statuses = await Promise.all(
    members.map(async (m) => {
      if (!m.running || m.isPaused) return undefined
      return (await httpJson(`${m.clientUrl}/v3/maintenance/status`, {
        body: {},
        timeoutMs: 2_000,
      }).catch(() => undefined)) as Status | undefined
    }),
  )
  const leaderId = statuses.find((s) => s?.leader !== undefined && s.leader !== '0')?.leader
  const index = statuses.findIndex(
    (s) => leaderId !== undefined && s?.header?.member_id === leaderId,
  )
  const leader = members[index]
  if (leader === undefined) throw new Error('no etcd leader found among the running members')
  return leader
}

// ---------------------------------------------------------------------------------------------
// The v3 JSON gateway (POST /v3/kv/...; keys and values are base64).

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64')
const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8')

export interface EtcdRequestOptions {
  readonly signal?: AbortSignal
  /** Default 5 000 ms. */
  readonly timeoutMs?: number
}

function requestOptions(
  body: unknown,
  options: EtcdRequestOptions,
): Parameters<typeof httpJson>[1] {
  return {
    body,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  }
}

/** Puts `key` = `value` through the JSON gateway; resolves with the new revision. */
export async function etcdPut(
  clientUrl: string,
  key: string,
  value: string,
  options: EtcdRequestOptions = {},
): Promise<number> {
  const res = (await httpJson(
    `${clientUrl}/v3/kv/put`,
    requestOptions({ key: b64(key), value: b64(value) }, options),
  )) as { header?: { revision?: string } }
  return Number(res.header?.revision ?? 0)
}

/** Gets `key` through the JSON gateway; `undefined` when it does not exist. */
export async function etcdGet(
  clientUrl: string,
  key: string,
  options: EtcdRequestOptions = {},
): Promise<string | undefined> {
  const res = (await httpJson(
    `${clientUrl}/v3/kv/range`,
    requestOptions({ key: b64(key) }, options),
  )) as {
    kvs?: { value?: string }[]
  }
  const value = res.kvs?.[0]?.value
  return value === undefined ? (res.kvs?.[0] ? '' : undefined) : unb64(value)
}

/** Deletes `key` through the JSON gateway; resolves with the number of keys deleted. */
export async function etcdDelete(
  clientUrl: string,
  key: string,
  options: EtcdRequestOptions = {},
): Promise<number> {
  const res = (await httpJson(
    `${clientUrl}/v3/kv/deleterange`,
    requestOptions({ key: b64(key) }, options),
  )) as { deleted?: string }
  return Number(res.deleted ?? 0)
}
