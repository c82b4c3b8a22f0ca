// One run of the million-key workload, in a process of its own (run with --expose-gc): a memory
// store holding `count` keys, then a resync of two json() consumers through createDatasync.
// Reports the resync's wall and CPU time, and heap + external after GC before and after it.
import { createMemoryStore } from 'rx-datasync'
import { dataSet, valueText } from '../lib/data.js'
import { oursResync } from '../lib/ours.js'

/** What the parent passes (JSON, first argument). */
export interface MillionInput {
  readonly count: number
}

/** What the child reports. */
export interface MillionReport {
  readonly type: 'million'
  readonly ms: number
  readonly cpuMs: number
  /** What holding the resynced state added to heap + external, after GC. */
  readonly stateBytes: number
  /** The process's peak RSS (bytes). */
  readonly peakRss: number
}

const input = JSON.parse(process.argv[2] ?? '{}') as MillionInput
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with --expose-gc')
const settle = async () => {
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
}
const data = dataSet('million', input.count)
const encoder = new TextEncoder()
const initial = new Map<string, Uint8Array>()
for (let i = 0; i < input.count; i++) initial.set(data.key(i), encoder.encode(valueText(i)))
const store = createMemoryStore({ initial })
initial.clear()
await settle()
const heap = () => {
  const usage = process.memoryUsage()
  return usage.heapUsed + usage.external
}
const before = heap()
const result = await oursResync(store, data.prefixes)
await settle()
const stateBytes = heap() - before
if (result.keys !== input.count) throw new Error(`got ${result.keys} keys, expected ${input.count}`)
const report: MillionReport = {
  type: 'million',
  ms: result.ms,
  cpuMs: result.cpuMs,
  stateBytes,
  peakRss: process.resourceUsage().maxRSS * 1024,
}
result.sync.close()
// Exits once the report is sent (an exit right after send may drop it).
process.send?.(report, () => process.exit(0))
