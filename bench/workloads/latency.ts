/**
 * Put-to-callback latency: a put through the raw client, and the time until the consumer's
 * change callback (ours) or the raw watcher's callback sees that key; one put at a time.
 */
import { performance } from 'node:perf_hooks'
import type { Backend } from '../lib/backend.js'
import { valueText } from '../lib/data.js'
import { median, pairedRatio, ms, percentile, type Row } from '../lib/stats.js'
import { alternate, runName, startWatcher, type Settings } from './common.js'

interface Result {
  readonly p50: number
  readonly p99: number
}

export async function latencyWorkload(
  backend: Backend,
  samples: number,
  settings: Settings,
): Promise<Row[]> {
  const root = 'bench-lat'
  await backend.clear(root)
  const label = `latency ${backend.label}`
  const results = await alternate<Result>(
    settings,
    label,
    async (side, run) => {
      const prefix = `${root}/${runName(side, run)}/`
      let expect: { key: string; arrived: () => void } | undefined
      const onPut = (key: string) => {
        if (expect?.key === key) expect.arrived()
      }
      const close = await startWatcher(backend, side, prefix, onPut)
      const latencies: number[] = []
      for (let i = 0; i < samples; i++) {
        const key = `${prefix}${String(i).padStart(7, '0')}`
        const arrived = new Promise<void>((resolve) => {
          expect = { key, arrived: resolve }
        })
        const start = performance.now()
        await backend.rawPut(key, valueText(i))
        await arrived
        latencies.push(performance.now() - start)
      }
      await close()
      await backend.clear(root)
      return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) }
    },
    (r) => `p50 ${ms(r.p50)}, p99 ${ms(r.p99)}`,
  )
  const rows: Row[] = []
  for (const which of ['p50', 'p99'] as const) {
    const oursRuns = results.ours.map((r) => r[which])
    const rawRuns = results.raw.map((r) => r[which])
    const ours = median(oursRuns)
    const raw = median(rawRuns)
    rows.push({
      workload: `put-to-callback latency ${which}`,
      backend: backend.label,
      ours: ms(ours),
      raw: ms(raw),
      ratio: pairedRatio(oursRuns, rawRuns),
    })
  }
  return rows
}
