/**
 * Memory at 100k keys: each side in a process of its own (ours: the orchestrator holding the
 * resynced state in two consumers; raw: the parsed values in a Map per prefix), measured after
 * a forced GC, and the process's peak RSS.
 */
import type { Backend } from '../lib/backend.js'
import { startChild } from '../lib/child.js'
import type { DataSet } from '../lib/data.js'
import { median, pairedRatio, mib, type Row } from '../lib/stats.js'
import type { MemoryInput, MemoryReport } from '../children/memory.js'
import { alternate, type Settings } from './common.js'

interface Result {
  readonly peakRss: number
  /** JS heap plus memory outside it held by JS objects (Buffers), after GC, holding the state. */
  readonly heap: number
  /** What holding the state added to heap + external. */
  readonly state: number
  readonly rss: number
}

export async function memoryWorkload(
  backend: Backend,
  data: DataSet,
  settings: Settings,
): Promise<Row[]> {
  const label = `memory ${data.count / 1000}k ${backend.label}`
  const name = backend.name
  // The memory children speak etcd and Redis only (bench/run.ts skips the others).
  if (name === 'postgres' || name === 'nats') return []
  // Each run is a fresh process: there is nothing to warm up.
  const results = await alternate<Result>(
    { ...settings, warmups: 0 },
    label,
    async (side) => {
      const input: MemoryInput = {
        backend: name,
        side,
        endpoint: backend.endpoint,
        prefixes: data.prefixes,
        expected: data.count,
        storeOptions: backend.storeOptions,
      }
      const child = startChild('memory', input, { exposeGc: true })
      const report = await child.next<MemoryReport>('memory')
      child.send({ type: 'exit' })
      await child.exited
      const heapOf = (m: NodeJS.MemoryUsage) => m.heapUsed + m.external
      return {
        peakRss: report.peakRss,
        heap: heapOf(report.after),
        state: heapOf(report.after) - heapOf(report.before),
        rss: report.after.rss,
      }
    },
    (r) =>
      `peak RSS ${mib(r.peakRss)}, heap+external ${mib(r.heap)} (state ${mib(r.state)}), RSS after GC ${mib(r.rss)}`,
  )
  const row = (workload: string, pick: (r: Result) => number, target: Row['target']): Row => {
    const oursRuns = results.ours.map(pick)
    const rawRuns = results.raw.map(pick)
    const ours = median(oursRuns)
    const raw = median(rawRuns)
    return {
      workload,
      backend: backend.label,
      ours: mib(ours),
      raw: mib(raw),
      ratio: pairedRatio(oursRuns, rawRuns),
      ...(target ? { target } : {}),
    }
  }
  const k = `${data.count / 1000}k`
  return [
    row(`memory ${k}: peak RSS`, (r) => r.peakRss, { op: '<=', value: 1.5 }),
    row(`memory ${k}: heap + external after GC`, (r) => r.heap, { op: '<=', value: 1.5 }),
    row(`memory ${k}: state alone (heap delta)`, (r) => r.state, undefined),
  ]
}
