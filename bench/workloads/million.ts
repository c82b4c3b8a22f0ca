/**
 * A million keys (on demand, `--workloads million`): a resync of 1,000,000 keys on the memory
 * store through `createDatasync` (two json() consumers), against the same at 100,000 keys. Each
 * run is a process of its own (`bench/children/million.ts`). The rows compare per key: CPU time
 * and the state held after GC at 1M ("ours") against 100k ("raw"), so a ratio of 1.0 is linear.
 */
import { startChild } from '../lib/child.js'
import { median, pairedRatio, type Row } from '../lib/stats.js'
import type { MillionInput, MillionReport } from '../children/million.js'
import type { Settings } from './common.js'

const SMALL = 100_000
const LARGE = 1_000_000

async function once(count: number): Promise<MillionReport> {
  const input: MillionInput = { count }
  const child = startChild('million', input, {
    exposeGc: true,
    execArgv: ['--max-old-space-size=8192'],
  })
  const report = await child.next<MillionReport>('million')
  await child.exited
  return report
}

export async function millionWorkload(settings: Settings): Promise<Row[]> {
  const small: MillionReport[] = []
  const large: MillionReport[] = []
  for (let run = 0; run < settings.runs; run++) {
    // Alternating, as the two sides of the other workloads.
    const order = run % 2 === 0 ? [SMALL, LARGE] : [LARGE, SMALL]
    for (const count of order) {
      const report = await once(count)
      ;(count === SMALL ? small : large).push(report)
      if (settings.verbose) {
        console.log(
          `  million run ${run + 1} ${count} keys: ${report.ms.toFixed(0)} ms (CPU ${report.cpuMs.toFixed(0)} ms), state ${(report.stateBytes / count).toFixed(0)} B/key, peak RSS ${(report.peakRss / 2 ** 20).toFixed(0)} MiB`,
        )
      }
    }
  }
  const row = (
    workload: string,
    pick: (r: MillionReport, count: number) => number,
    show: (value: number) => string,
  ): Row => {
    const ours = large.map((r) => pick(r, LARGE))
    const raw = small.map((r) => pick(r, SMALL))
    return {
      workload,
      backend: 'memory',
      ours: show(median(ours)),
      raw: show(median(raw)),
      ratio: pairedRatio(ours, raw),
      target: { op: '<=', value: 1.2 },
    }
  }
  const us = (value: number) => `${value.toFixed(2)} µs/key`
  const bytes = (value: number) => `${value.toFixed(0)} B/key`
  return [
    row('resync 1M vs 100k (raw column): wall per key', (r, n) => (r.ms * 1000) / n, us),
    row('resync 1M vs 100k (raw column): CPU per key', (r, n) => (r.cpuMs * 1000) / n, us),
    row('resync 1M vs 100k (raw column): state per key', (r, n) => r.stateBytes / n, bytes),
  ]
}
