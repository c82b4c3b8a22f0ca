/**
 * Real Consul agents for integration tests (built once from source, see consul-install.ts): a dev
 * agent (in memory), a single server with a data directory (its data survives a restart), and a
 * cluster of servers (optionally with client agents), each on free loopback ports.
 */
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { ensureConsul } from './consul-install.js'
import { httpRequest } from './http.js'
import { LOOPBACK, freePorts } from './ports.js'
import { ServerProcess, type ReadinessProbe } from './process.js'

export interface ConsulOptions {
  /**
   * `dev`: `-dev`, everything in memory (a restart loses the data and resets Consul's indexes).
   * `server`: `-server -bootstrap-expect 1` with a data directory, so a restart keeps the data.
   * Default `dev`.
   */
  readonly mode?: 'dev' | 'server'
  /** Node name (`-node`). Default `consul-<mode>`. */
  readonly node?: string
  /**
   * HCL written to a config file and passed with `-config-file`, e.g. an `acl { ... }` block or
   * `session_ttl_min = "1s"`.
   */
  readonly config?: string
  /** Extra command-line flags. */
  readonly extraArgs?: readonly string[]
  /** Readiness timeout (ms). Default 60 000. */
  readonly readyTimeoutMs?: number
}

/** The four loopback ports of one agent (DNS and gRPC are disabled). */
interface AgentPorts {
  readonly http: number
  readonly serfLan: number
  readonly serfWan: number
  readonly server: number
}

interface AgentConfig {
  readonly binary: string
  readonly node: string
  readonly ports: AgentPorts
  readonly modeArgs: (dataDir: string) => readonly string[]
  readonly config?: string
  readonly extraArgs?: readonly string[]
  readonly readyTimeoutMs?: number
  readonly ready?: ReadinessProbe
}

/**
 * The raft leader's address (`127.0.0.1:<server port>`) as `GET /v1/status/leader` of the agent
 * at `httpUrl` answers it, or `''` when there is no leader yet.
 */
export async function consulLeader(httpUrl: string, signal?: AbortSignal): Promise<string> {
  const res = await httpRequest(`${httpUrl}/v1/status/leader`, {
    timeoutMs: 2_000,
    ...(signal ? { signal } : {}),
  })
  if (res.status !== 200) throw new Error(`HTTP ${res.status} from ${httpUrl}/v1/status/leader`)
  return JSON.parse(res.body) as string
}

/** One Consul agent process. */
export class ConsulAgent extends ServerProcess {
  /** The node name (`-node`). */
  readonly node: string
  readonly ports: AgentPorts
  /** `127.0.0.1:<http port>`: what `createConsulStore({ address })` takes. */
  readonly address: string
  /** `http://127.0.0.1:<http port>` */
  readonly httpUrl: string
  /** `127.0.0.1:<server port>`: how `/v1/status/leader` names this agent when it leads. */
  readonly serverAddress: string
  /** `127.0.0.1:<serf LAN port>`: what other agents `-retry-join`. */
  readonly serfAddress: string

  constructor(config: AgentConfig) {
    const httpUrl = `http://${LOOPBACK}:${config.ports.http}`
    const configFile = (dir: string) => path.join(dir, 'agent.hcl')
    super({
      binary: config.binary,
      name: `consul-${config.node}`,
      args: (dir) => [
        'agent',
        ...config.modeArgs(dir),
        '-node',
        config.node,
        '-bind',
        LOOPBACK,
        '-client',
        LOOPBACK,
        '-advertise',
        LOOPBACK,
        '-http-port',
        String(config.ports.http),
        '-serf-lan-port',
        String(config.ports.serfLan),
        '-serf-wan-port',
        String(config.ports.serfWan),
        '-server-port',
        String(config.ports.server),
        '-dns-port',
        '-1',
        '-grpc-port',
        '-1',
        '-grpc-tls-port',
        '-1',
        '-disable-host-node-id',
        '-log-level',
        'info',
        ...(config.config !== undefined ? ['-config-file', configFile(dir)] : []),
        ...(config.extraArgs ?? []),
      ],
      setup: async (dir) => {
        if (config.config !== undefined) await writeFile(configFile(dir), config.config)
      },
      ready: config.ready ?? (async (signal) => (await consulLeader(httpUrl, signal)) !== ''),
      readyTimeoutMs: config.readyTimeoutMs ?? 60_000,
    })
    this.node = config.node
    this.ports = config.ports
    this.address = `${LOOPBACK}:${config.ports.http}`
    this.httpUrl = httpUrl
    this.serverAddress = `${LOOPBACK}:${config.ports.server}`
    this.serfAddress = `${LOOPBACK}:${config.ports.serfLan}`
  }
}

async function agentPorts(count: number): Promise<AgentPorts[]> {
  const ports = await freePorts(count * 4)
  return Array.from({ length: count }, (_, i) => ({
    http: ports[i * 4]!,
    serfLan: ports[i * 4 + 1]!,
    serfWan: ports[i * 4 + 2]!,
    server: ports[i * 4 + 3]!,
  }))
}

/** Raft timing for a loopback cluster: elections in well under a second. */
const FAST_RAFT = ['-hcl', 'performance { raft_multiplier = 1 }']

/**
 * Starts one agent and waits until `/v1/status/leader` names a leader. In `dev` mode (the
 * default) the data lives in memory; in `server` mode it lives in the data directory and survives
 * `restart()`.
 */
export async function startConsul(options: ConsulOptions = {}): Promise<ConsulAgent> {
  const mode = options.mode ?? 'dev'
  const binary = await ensureConsul()
  return withFreshPorts(async () => {
    const [ports] = await agentPorts(1)
    const agent = new ConsulAgent({
      binary,
      node: options.node ?? `consul-${mode}`,
      ports: ports!,
      modeArgs: (dir) =>
        mode === 'dev'
          ? ['-dev']
          : [
              '-server',
              '-bootstrap-expect',
              '1',
              '-data-dir',
              path.join(dir, 'data'),
              ...FAST_RAFT,
            ],
      ...(options.config !== undefined ? { config: options.config } : {}),
      ...(options.extraArgs ? { extraArgs: options.extraArgs } : {}),
      ...(options.readyTimeoutMs !== undefined ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
    })
    try {
      return await agent.start()
    } catch (err) {
      await agent.cleanup().catch(() => undefined)
      throw err
    }
  })
}

/**
 * Runs `start` again (with new free ports) when it failed because a port was taken between
 * choosing it and the agent binding it: another test process may bind a port freePorts() just
 * released.
 */
async function withFreshPorts<T>(start: () => Promise<T>, attempts = 4): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start()
    } catch (err) {
      const taken = err instanceof Error && err.message.includes('address already in use')
      if (!taken || attempt >= attempts) throw err
    }
  }
}

export interface ConsulClusterOptions {
  /** Number of servers. Default 3. */
  readonly servers?: number
  /** Number of client agents joined to the servers. Default 0. */
  readonly clients?: number
  /** HCL for every agent's config file. */
  readonly config?: string
  /** Readiness timeout per agent (ms). Default 90 000. */
  readonly readyTimeoutMs?: number
}

export interface ConsulCluster {
  readonly servers: readonly ConsulAgent[]
  readonly clients: readonly ConsulAgent[]
  /** Servers, then clients. */
  readonly agents: readonly ConsulAgent[]
  /** The server that is raft leader now (asks the running, unpaused agents). */
  leader(): Promise<ConsulAgent>
  /** Cleans up every agent (kill, remove data directories). */
  cleanup(): Promise<void>
}

/**
 * Starts `servers` servers (`-server -bootstrap-expect <servers> -retry-join <the others>`, each
 * with its own data directory) and `clients` client agents joined to them, and waits until every
 * agent sees the elected leader.
 */
export async function startConsulCluster(
  options: ConsulClusterOptions = {},
): Promise<ConsulCluster> {
  const serverCount = options.servers ?? 3
  const clientCount = options.clients ?? 0
  const binary = await ensureConsul()
  return withFreshPorts(async () => {
    const ports = await agentPorts(serverCount + clientCount)
    const serfOf = (i: number) => `${LOOPBACK}:${ports[i]!.serfLan}`
    const joinAll = (self: number) =>
      Array.from({ length: serverCount }, (_, i) => i)
        .filter((i) => i !== self)
        .flatMap((i) => ['-retry-join', serfOf(i)])
    const common = {
      binary,
      readyTimeoutMs: options.readyTimeoutMs ?? 90_000,
      ...(options.config !== undefined ? { config: options.config } : {}),
    }
    const servers = Array.from(
      { length: serverCount },
      (_, i) =>
        new ConsulAgent({
          ...common,
          node: `server${i}`,
          ports: ports[i]!,
          modeArgs: (dir) => [
            '-server',
            '-bootstrap-expect',
            String(serverCount),
            '-data-dir',
            path.join(dir, 'data'),
            ...joinAll(i),
            ...FAST_RAFT,
          ],
        }),
    )
    const clients = Array.from(
      { length: clientCount },
      (_, i) =>
        new ConsulAgent({
          ...common,
          node: `client${i}`,
          ports: ports[serverCount + i]!,
          modeArgs: (dir) => ['-data-dir', path.join(dir, 'data'), ...joinAll(-1)],
        }),
    )
    const agents = [...servers, ...clients]
    const cleanup = async (): Promise<void> => {
      await Promise.all(agents.map((agent) => agent.cleanup()))
    }
    // Every server must start together: none is ready before a quorum has elected a leader.
    // When one fails, the others are stopped at once rather than left waiting for a quorum.
    const starts = agents.map((agent) => agent.start())
    try {
      await Promise.all(starts)
    } catch (first) {
      await cleanup().catch(() => undefined)
      const reasons = (await Promise.allSettled(starts)).flatMap((r) =>
        r.status === 'rejected' ? [r.reason as unknown] : [],
      )
      throw (
        reasons.find((r) => r instanceof Error && r.message.includes('address already in use')) ??
        first
      )
    }
    return {
      servers,
      clients,
      agents,
      leader: () => consulClusterLeader(servers),
      cleanup,
    }
  })
}

/** The server that is raft leader, as the running (unpaused) servers report it. */
export async function consulClusterLeader(servers: readonly ConsulAgent[]): Promise<ConsulAgent> {
  for (const server of servers) {
    if (!server.running || server.isPaused) continue
    const leader = await consulLeader(server.httpUrl).catch(() => '')
    const found = servers.find((s) => s.serverAddress === leader)
    if (found !== undefined) return found
  }
  throw new Error('no consul leader found among the running servers')
}

// ---------------------------------------------------------------------------------------------
// The KV HTTP API, for tests that write around the store under test.

export interface ConsulRequestOptions {
  /** ACL token (`X-Consul-Token`). */
  readonly token?: string
  readonly signal?: AbortSignal
  /** Default 5 000 ms. */
  readonly timeoutMs?: number
}

function headers(options: ConsulRequestOptions): Record<string, string> {
  return options.token !== undefined ? { 'x-consul-token': options.token } : {}
}

function kvUrl(httpUrl: string, key: string, query = ''): string {
  return `${httpUrl}/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}${query}`
}

async function consulCall(
  url: string,
  method: string,
  body: string | undefined,
  options: ConsulRequestOptions,
): Promise<string> {
  const res = await httpRequest(url, {
    method,
    headers: headers(options),
    ...(body !== undefined ? { body } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  })
  if (res.status === 404) return ''
  if (res.status < 200 || res.status >= 300) {
    throw new Error(`HTTP ${res.status} from ${method} ${url}: ${res.body.slice(0, 500)}`)
  }
  return res.body
}

/** Puts `key` = `value` through the KV HTTP API. */
export async function consulKvPut(
  httpUrl: string,
  key: string,
  value: string,
  options: ConsulRequestOptions = {},
): Promise<void> {
  const body = await consulCall(kvUrl(httpUrl, key), 'PUT', value, options)
  if (body.trim() !== 'true') throw new Error(`consul refused the put of ${key}: ${body}`)
}

/** Gets `key` through the KV HTTP API; `undefined` when it does not exist. */
export async function consulKvGet(
  httpUrl: string,
  key: string,
  options: ConsulRequestOptions = {},
): Promise<string | undefined> {
  const body = await consulCall(kvUrl(httpUrl, key), 'GET', undefined, options)
  if (body === '') return undefined
  const [entry] = JSON.parse(body) as { Value: string | null }[]
  return Buffer.from(entry?.Value ?? '', 'base64').toString('utf8')
}

/** Deletes `key` (with `recurse`, every key under it) through the KV HTTP API. */
export async function consulKvDelete(
  httpUrl: string,
  key: string,
  options: ConsulRequestOptions & { readonly recurse?: boolean } = {},
): Promise<void> {
  await consulCall(
    kvUrl(httpUrl, key, options.recurse === true ? '?recurse' : ''),
    'DELETE',
    undefined,
    options,
  )
}
