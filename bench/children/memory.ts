// One side of the memory workload, in a process of its own so its RSS is its own: either our
// orchestrator holding the resynced state in two consumers, or the raw client holding the
// parsed values in a Map per prefix. Run with --expose-gc. Reports the memory after a forced GC
// before and after the state was loaded, and the peak RSS of the process.
import { hear, tell } from '../lib/child.js'

/** What the parent passes (JSON, first argument). */
export interface MemoryInput {
  readonly backend: 'etcd' | 'redis'
  readonly side: 'ours' | 'raw'
  readonly endpoint: string
  readonly prefixes: readonly string[]
  readonly expected: number
  /** Our store's options beyond the address. */
  readonly storeOptions: { readonly watchMemory?: 'values' | 'lean' }
}

/** What the child reports. */
export interface MemoryReport {
  readonly type: 'memory'
  readonly keys: number
  /** After a forced GC, connected, before loading anything. */
  readonly before: NodeJS.MemoryUsage
  /** After a forced GC, holding the state. */
  readonly after: NodeJS.MemoryUsage
  /** The process's peak RSS (bytes). */
  readonly peakRss: number
}

const input = JSON.parse(process.argv[2] ?? '{}') as MemoryInput
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with --expose-gc')

const settle = async () => {
  // A few rounds: finalizers and weak references can free more on a later one.
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/** What the side holds, kept reachable until the report is sent. */
let held: unknown
let keys = 0
let load: () => Promise<void>

if (input.side === 'raw') {
  if (input.backend === 'etcd') {
    const { Etcd3 } = await import('etcd3')
    const { rawEtcdRead } = await import('../lib/raw-etcd.js')
    const client = new Etcd3({ hosts: input.endpoint.split(',') })
    await client.get('bench/warm-up').string()
    load = async () => {
      const listing = await rawEtcdRead(client, input.prefixes)
      keys = listing.reduce((n, map) => n + map.size, 0)
      held = listing
    }
  } else {
    const { rawRedis, rawRedisRead } = await import('../lib/raw-redis.js')
    const client = await rawRedis(Number(input.endpoint))
    load = async () => {
      const listing = await rawRedisRead(client, input.prefixes)
      keys = listing.reduce((n, map) => n + map.size, 0)
      held = listing
    }
  }
} else {
  const { firstValueFrom } = await import('rxjs')
  const { oursResync } = await import('../lib/ours.js')
  let store
  if (input.backend === 'etcd') {
    const { createEtcdStore } = await import('rx-datasync/etcd')
    store = createEtcdStore({ endpoints: input.endpoint.split(',') })
  } else {
    const { createRedisStore } = await import('rx-datasync/redis')
    store = createRedisStore({
      node: { host: '127.0.0.1', port: Number(input.endpoint) },
      ...input.storeOptions,
    })
  }
  await firstValueFrom(store.get('bench/warm-up'), { defaultValue: undefined })
  const ready = store
  load = async () => {
    const result = await oursResync(ready, input.prefixes)
    keys = result.keys
    held = result
  }
}

await settle()
const before = process.memoryUsage()
await load()
await settle()
const after = process.memoryUsage()
if (keys !== input.expected) throw new Error(`held ${keys} keys, expected ${input.expected}`)
const report: MemoryReport = {
  type: 'memory',
  keys,
  before,
  after,
  peakRss: process.resourceUsage().maxRSS * 1024,
}
// For a post-mortem of where the memory goes: BENCH_HEAP_SNAPSHOT_DIR=/tmp/heap (open the file
// in Chrome DevTools, Memory tab).
const snapshotDir = process.env.BENCH_HEAP_SNAPSHOT_DIR
if (snapshotDir !== undefined && snapshotDir !== '') {
  const v8 = await import('node:v8')
  const path = await import('node:path')
  const file = v8.writeHeapSnapshot(
    path.join(
      snapshotDir,
      `${input.backend}-${input.storeOptions.watchMemory ?? 'default'}-${input.side}-${process.pid}.heapsnapshot`,
    ),
  )
  console.log(`heap snapshot: ${file}`)
}
tell(report as unknown as { type: string } & Record<string, unknown>)
await hear('exit')
if (held === undefined) throw new Error('nothing held')
process.exit(0)
