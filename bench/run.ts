// Benchmarks of rx-datasync against the raw clients (etcd3, ioredis), on real servers started by
// the test harness on free loopback ports: resync, memory, watch throughput, put-to-callback
// latency and puts. Ours and raw run alternately, each figure is the median of several runs, and
// one table of ratios comes at the end. See bench/README.md for what each workload measures.
//
//   node --conditions=source --import tsx bench/run.ts [options]
//
//   --runs 7            timed runs per side (the median is reported; at least 5 for the issue)
//   --warmups 3         untimed runs per side first (JIT), except for memory (fresh processes)
//   --backends etcd,redis,redis-values   redis: our store's defaults (watchMemory 'lean');
//                       redis-values, redis-lean: with that watchMemory (same server)
//                       postgres: on demand (not in the default list), a PostgreSQL 15 server of its own
//   --workloads resync,combined,memory,throughput,latency,writes,restore
//   --sizes 10000,100000        resync sizes; memory, combined and restore use the largest
//                       restore (etcd): first view after a restart from a saved snapshot vs a full resync
//   --workloads million on demand: resync of 1M keys on the memory store through createDatasync,
//                       per key against 100k (time and state must grow linearly); runs its own
//                       processes, no server needed (--backends memory alone skips the servers)
//   --workloads large   on demand: resync of 300k keys, past the Redis store's revision cache
//                       (revisionCacheSize, 100k): cost must stay linear in the key count
//   --changes 20000 --batch 100 --concurrency 4   the throughput writer (a separate process)
//   --samples 500       puts per latency run
//   --puts 5000 --put-concurrency 16              the writes workload
//   --sides ours,raw    one side alone, to profile it (no ratio then)
//   --peer PATH         the Go peer (../shared/peer/cn-infra-bench, built): run on the same servers
//                       and data right after each workload it has, a third column and ours/Go
//   --verbose           print every run
import { parseArgs } from 'node:util'
import {
  cleanupAllServers,
  startEtcd,
  startPostgres,
  startRedis,
  type ServerProcess,
} from '../test/servers/index.js'
import type { Backend } from './lib/backend.js'
import { etcdBackend } from './lib/etcd.js'
import { machineLines } from './lib/machine.js'
import { redisBackend } from './lib/redis.js'
import { postgresBackend } from './lib/postgres.js'
import { natsBackend } from './lib/nats.js'
import { startNats } from '../test/servers/nats.js'
import { renderTable, verdict, type Row } from './lib/stats.js'
import { runPeer, withPeer, type PeerSettings } from './lib/peer.js'
import type { Settings, Side } from './workloads/common.js'
import { latencyWorkload } from './workloads/latency.js'
import { memoryWorkload } from './workloads/memory.js'
import { combinedWorkload } from './workloads/combined.js'
import { resyncData, resyncWorkload } from './workloads/resync.js'
import { restoreWorkload } from './workloads/restore.js'
import { throughputWorkload } from './workloads/throughput.js'
import { writesWorkload } from './workloads/writes.js'
import { millionWorkload } from './workloads/million.js'

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    warmups: { type: 'string', default: '3' },
    backends: { type: 'string', default: 'etcd,redis,redis-values' },
    workloads: {
      type: 'string',
      default: 'resync,combined,memory,throughput,latency,writes,restore',
    },
    sizes: { type: 'string', default: '10000,100000' },
    changes: { type: 'string', default: '20000' },
    batch: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '4' },
    samples: { type: 'string', default: '500' },
    puts: { type: 'string', default: '5000' },
    'put-concurrency': { type: 'string', default: '16' },
    sides: { type: 'string', default: 'ours,raw' },
    peer: { type: 'string' },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
})

if (args.help) {
  const header = (await import('node:fs')).readFileSync(new URL(import.meta.url), 'utf8')
  console.log(
    header
      .split('\n')
      .filter((line) => line.startsWith('//'))
      .map((line) => line.slice(3))
      .join('\n'),
  )
  process.exit(0)
}

const list = (text: string) => text.split(',').filter((item) => item !== '')
const sides = list(args.sides).filter((side): side is Side => side === 'ours' || side === 'raw')
const settings: Settings = {
  runs: Number(args.runs),
  warmups: Number(args.warmups),
  verbose: args.verbose,
  sides,
}
const backends = list(args.backends)
const workloads = new Set(list(args.workloads))
const sizes = list(args.sizes).map(Number)
if (!(settings.runs >= 1)) throw new TypeError(`--runs: expected a count, got ${args.runs}`)

const log = (line: string) => {
  console.log(line)
}

const peer: PeerSettings | undefined =
  args.peer === undefined
    ? undefined
    : {
        path: args.peer,
        runs: settings.runs,
        warmups: settings.warmups,
        verbose: settings.verbose,
        changes: Number(args.changes),
        batch: Number(args.batch),
        concurrency: Number(args.concurrency),
        samples: Number(args.samples),
        puts: Number(args.puts),
        putConcurrency: Number(args['put-concurrency']),
      }

/** `measured` (one workload's rows) with the Go peer's column, when `--peer` is given. */
async function peerColumn(
  backend: Backend,
  workload: string,
  size: number,
  measured: Row[],
): Promise<Row[]> {
  // One Go run per server: a variant of our store (redis lean) has the same Go counterpart.
  if (peer === undefined || backend.label !== backend.name) return measured
  log(`${backend.label}: the Go peer, ${workload}`)
  try {
    return withPeer(measured, await runPeer(peer, backend, workload, [size]), backend)
  } catch (error) {
    // A failed peer run (etcd timing out under load, say) leaves its column empty, not the run.
    log(`${backend.label}: the Go peer failed: ${(error as Error).message}`)
    return measured
  }
}

const servers: ServerProcess[] = []
let redisServer: Awaited<ReturnType<typeof startRedis>> | undefined
const opened: Backend[] = []
const rows: Row[] = []
/** The keys of the on-demand `large` workload: three times the Redis revision cache. */
const LARGE = 300_000

async function open(name: string): Promise<Backend> {
  if (name === 'etcd') {
    const server = await startEtcd({ name: 'bench' })
    servers.push(server)
    return etcdBackend(server)
  }
  if (name === 'redis' || name === 'redis-lean' || name === 'redis-values') {
    // Both Redis variants use one server.
    if (!redisServer) {
      redisServer = await startRedis({ name: 'redis-bench', notifyKeyspaceEvents: 'KEA' })
      servers.push(redisServer)
    }
    return redisBackend(
      redisServer,
      name === 'redis' ? undefined : name === 'redis-lean' ? 'lean' : 'values',
    )
  }
  if (name === 'postgres') {
    const server = await startPostgres({ name: 'postgres-bench' })
    servers.push(server)
    return postgresBackend(server)
  }
  if (name === 'nats') {
    const server = await startNats({ name: 'nats-bench' })
    servers.push(server)
    return natsBackend(server)
  }
  throw new TypeError(
    `--backends: unknown backend '${name}' (etcd, redis, redis-values, redis-lean, postgres, nats)`,
  )
}

async function runBackend(backend: Backend): Promise<void> {
  const step = (what: string) => {
    log(`${backend.label}: ${what}`)
  }
  if (workloads.has('resync') || workloads.has('memory')) {
    for (const size of sizes) {
      if (workloads.has('resync')) {
        step(`resync of ${size} keys`)
        rows.push(
          ...(await peerColumn(
            backend,
            'resync',
            size,
            await resyncWorkload(backend, size, settings),
          )),
        )
      }
      // The memory children speak etcd and Redis only.
      if (
        workloads.has('memory') &&
        size === Math.max(...sizes) &&
        backend.name !== 'postgres' &&
        backend.name !== 'nats'
      ) {
        const data = resyncData(size)
        if (!workloads.has('resync')) {
          await backend.clear(data.root)
          await backend.load(data)
        }
        step(`memory at ${size} keys`)
        rows.push(
          ...(await peerColumn(
            backend,
            'memory',
            size,
            await memoryWorkload(backend, data, settings),
          )),
        )
      }
      await backend.clear(resyncData(size).root)
    }
  }
  if (workloads.has('large')) {
    step(`resync of ${LARGE} keys (past the Redis revision cache of 100k keys)`)
    rows.push(...(await resyncWorkload(backend, LARGE, settings)))
    await backend.clear(resyncData(LARGE).root)
  }
  if (workloads.has('restore') && backend.name === 'etcd') {
    const size = Math.max(...sizes)
    step(`first view after a restart of ${size} keys: saved snapshot vs full resync`)
    rows.push(...(await restoreWorkload(backend, size, settings)))
  }
  if (workloads.has('combined')) {
    const size = Math.max(...sizes)
    step(`resync of ${size} keys split over two sources of a routed store`)
    rows.push(...(await combinedWorkload(backend, size, settings)))
  }
  if (workloads.has('throughput')) {
    step(`watch throughput, ${args.changes} changes`)
    const measured = await throughputWorkload(
      backend,
      {
        count: Number(args.changes),
        batch: Number(args.batch),
        concurrency: Number(args.concurrency),
      },
      settings,
    )
    rows.push(...(await peerColumn(backend, 'throughput', 0, measured)))
  }
  if (workloads.has('latency')) {
    step(`put-to-callback latency, ${args.samples} puts per run`)
    const measured = await latencyWorkload(backend, Number(args.samples), settings)
    rows.push(...(await peerColumn(backend, 'latency', 0, measured)))
  }
  if (workloads.has('writes')) {
    const inFlight = Number(args['put-concurrency'])
    step(`puts, ${args.puts} per run, ${inFlight} in flight`)
    const measured = await writesWorkload(backend, Number(args.puts), inFlight, settings)
    rows.push(...(await peerColumn(backend, 'writes', 0, measured)))
  }
}

try {
  for (const line of machineLines()) log(line)
  for (const name of backends) if (name !== 'memory') opened.push(await open(name))
  for (const backend of opened) log(`${backend.label} server: ${await backend.version()}`)
  log(
    `runs: ${settings.runs} per side (median reported), after ${settings.warmups} untimed warm-up runs each; ours and raw alternate`,
  )
  for (const backend of opened) await runBackend(backend)
  if (workloads.has('million')) {
    log('memory: resync of 1,000,000 keys against 100,000, per key')
    rows.push(...(await millionWorkload(settings)))
  }
} finally {
  for (const backend of opened) await backend.close().catch(() => undefined)
  await Promise.all(servers.map((server) => server.cleanup().catch(() => undefined)))
  await cleanupAllServers()
}

log('')
log(renderTable(rows))
log('')
log(
  'ratio: the median of the per-run ratios ours/raw (each pair ran back to back); for throughput higher is better, for everything else lower. The machine is shared: other processes load it while this runs, which moves single figures, less so the ratios.',
)
const failed = rows.filter((row) => verdict(row) === 'FAIL')
log('')
log(
  failed.length === 0
    ? 'every target holds'
    : `${failed.length} target(s) missed: ${failed.map((row) => `${row.workload} (${row.backend})`).join('; ')}`,
)
