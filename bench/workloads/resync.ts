/**
 * Resync: the time from start to in-sync of two acknowledging json() consumers (one per prefix,
 * half of the keys each) against the raw client's read of the same prefixes plus JSON.parse.
 */
import type { Backend } from '../lib/backend.js'
import { dataSet } from '../lib/data.js'
import { oursResync } from '../lib/ours.js'
import { median, pairedRatio, ms, type Row } from '../lib/stats.js'
import { alternate, type Settings } from './common.js'

interface Result {
  readonly ms: number
  readonly cpuMs: number
}

export async function resyncWorkload(
  backend: Backend,
  count: number,
  settings: Settings,
): Promise<Row[]> {
  const data = dataSet(`bench-resync-${count}`, count)
  await backend.clear(data.root)
  await backend.load(data)
  const label = `resync ${count / 1000}k ${backend.label}`
  const times = await alternate<Result>(
    settings,
    label,
    async (side) => {
      if (side === 'ours') {
        const store = await backend.ourStore()
        const result = await oursResync(store, data.prefixes)
        result.sync.close()
        await store.close()
        if (result.keys !== count) throw new Error(`${label}: ours got ${result.keys} keys`)
        return { ms: result.ms, cpuMs: result.cpuMs }
      }
      const result = await backend.rawResync(data.prefixes)
      await result.close()
      const keys = result.listing.reduce((n, map) => n + map.size, 0)
      if (keys !== count) throw new Error(`${label}: raw got ${keys} keys`)
      return { ms: result.ms, cpuMs: result.cpuMs }
    },
    (r) => `${ms(r.ms)} (CPU ${ms(r.cpuMs)})`,
  )
  const row = (workload: string, pick: (r: Result) => number, target?: Row['target']): Row => {
    const oursRuns = times.ours.map(pick)
    const rawRuns = times.raw.map(pick)
    const ours = median(oursRuns)
    const raw = median(rawRuns)
    return {
      workload,
      backend: backend.label,
      ours: ms(ours),
      raw: ms(raw),
      ratio: pairedRatio(oursRuns, rawRuns),
      ...(target ? { target } : {}),
    }
  }
  const k = `${count / 1000}k`
  return [
    row(`resync ${k} keys, 2 consumers`, (r) => r.ms, { op: '<=', value: 1.25 }),
    row(`resync ${k}: CPU of the client process`, (r) => r.cpuMs),
  ]
}

/** The data set the memory workload reads (left in place by the 100k resync). */
export function resyncData(count: number) {
  return dataSet(`bench-resync-${count}`, count)
}
