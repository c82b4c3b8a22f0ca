/**
 * Helpers for tests of the etcd store against real members: metrics, authentication set-up,
 * raw etcd3 clients (the "writer" that bypasses the store), and small Observable conveniences.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { Etcd3 } from 'etcd3'
import { filter, firstValueFrom, lastValueFrom, timeout, type Observable } from 'rxjs'
import type { StoreStatus } from '../../src/core/store.js'
import { ensureBinary, httpRequest, pollUntil } from '../servers/index.js'

const run = promisify(execFile)

/** The sum of a metric's samples in a member's `/metrics` (lines `name{labels} value`). */
export async function etcdMetric(
  clientUrl: string,
  name: string,
  labelFilter: (labels: string) => boolean = () => true,
): Promise<number> {
  const response = await httpRequest(`${clientUrl}/metrics`, { timeoutMs: 5_000 })
  let sum = 0
  for (const line of response.body.split('\n')) {
    if (!line.startsWith(name)) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line)
    if (!match || match[1] !== name) continue
    if (!labelFilter(match[2] ?? '')) continue
    sum += Number(match[3])
  }
  return sum
}

/** How many watchers the members hold, summed (the etcd_debugging_mvcc_watcher_total gauge). */
export async function watcherCount(clientUrls: readonly string[]): Promise<number> {
  const counts = await Promise.all(
    clientUrls.map((url) => etcdMetric(url, 'etcd_debugging_mvcc_watcher_total')),
  )
  return counts.reduce((a, b) => a + b, 0)
}

/** How many Range calls a member has answered (grpc_server_handled_total, method Range). */
export function rangeCalls(clientUrl: string): Promise<number> {
  return etcdMetric(clientUrl, 'grpc_server_handled_total', (labels) =>
    labels.includes('grpc_method="Range"'),
  )
}

/** Runs etcdctl (v3 API) against `endpoints`; resolves with its stdout. */
export async function etcdctl(
  endpoints: readonly string[],
  args: readonly string[],
): Promise<string> {
  try {
    // Installed on demand (Debian package etcd-client), as the servers are.
    const binary = await ensureBinary('etcdctl')
    const { stdout } = await run(binary, [`--endpoints=${endpoints.join(',')}`, ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
    })
    return stdout
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? ''
    throw new Error(`etcdctl ${args.join(' ')} failed: ${stderr}`, { cause: error })
  }
}

/** Creates the root user with `password`, grants it the root role and enables authentication. */
export async function enableAuth(endpoints: readonly string[], password: string): Promise<void> {
  await etcdctl(endpoints, ['user', 'add', `root:${password}`])
  await etcdctl(endpoints, ['user', 'grant-role', 'root', 'root']).catch(() => undefined)
  await etcdctl(endpoints, ['auth', 'enable'])
}

/**
 * A fault policy for etcd3 that runs every call once, as it is: no retry, no circuit breaker
 * (etcd3 calls only `execute`).
 */
export const passThrough = {
  execute: <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> =>
    Promise.resolve().then(() => fn({ signal: new AbortController().signal })),
} as never

/** A raw etcd3 client straight to `endpoints`: the test's writer, which no proxy cuts. */
export function rawClient(
  endpoints: readonly string[],
  options: Partial<ConstructorParameters<typeof Etcd3>[0]> = {},
): Etcd3 {
  return new Etcd3({ hosts: [...endpoints], ...options })
}

/** The current revision of the cluster, read through `client`. */
export async function currentRevision(client: Etcd3): Promise<bigint> {
  const response = await client.kv.range({ key: Buffer.from('\0'), limit: 1, keys_only: true })
  return BigInt(response.header.revision)
}

/** Waits (bounded) for `status$` to reach `state`. */
export function statusReaches(
  status$: Observable<StoreStatus>,
  state: StoreStatus['state'],
  within = 30_000,
): Promise<StoreStatus> {
  return firstValueFrom(
    status$.pipe(
      filter((status) => status.state === state),
      timeout({
        first: within,
        with: () => {
          throw new Error(`status did not reach '${state}' within ${within} ms`)
        },
      }),
    ),
  )
}

/** Subscribes, waits for completion, resolves with the last value (`undefined` for void). */
export function done<T>(source: Observable<T>): Promise<T | undefined> {
  return lastValueFrom(source, { defaultValue: undefined })
}

/** Polls until the members hold exactly `count` watchers. */
export function watchersReach(
  clientUrls: readonly string[],
  count: number,
  timeoutMs = 20_000,
): Promise<true> {
  return pollUntil(async () => (await watcherCount(clientUrls)) === count, {
    timeoutMs,
    description: `the etcd members to hold ${count} watchers`,
  })
}
