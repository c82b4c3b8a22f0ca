/**
 * Combined resync: the resync of `resync` (two acknowledging json() consumers, one per prefix)
 * over a routed store whose two sources each hold one prefix, against the same keys in one
 * store. Both sides are our stores on the same server, connected before the timer starts: the
 * ratio is what combining costs (the merge of the two snapshots, the combined revisions).
 */
import { createRoutedStore } from 'rx-datasync'
import type { Backend } from '../lib/backend.js'
import { dataSet } from '../lib/data.js'
import { oursResync } from '../lib/ours.js'
import { median, pairedRatio, ms, type Row } from '../lib/stats.js'
import { alternate, type Settings } from './common.js'

interface Result {
  readonly ms: number
  readonly cpuMs: number
}

export async function combinedWorkload(
  backend: Backend,
  count: number,
  settings: Settings,
): Promise<Row[]> {
  const data = dataSet(`bench-combined-${count}`, count)
  await backend.clear(data.root)
  await backend.load(data)
  const label = `combined resync ${count / 1000}k ${backend.label}`
  const times = await alternate<Result>(
    settings,
    label,
    async (side) => {
      // 'ours' is the routed store of two sources; 'raw' here is one store of ours.
      const [a, b] = [data.prefixes[0], data.prefixes[1]]
      const store =
        side === 'ours'
          ? createRoutedStore(
              {
                [a]: { name: 'a', store: await backend.ourStore() },
                [b]: { name: 'b', store: await backend.ourStore() },
              },
              { startTimeout: Infinity },
            )
          : await backend.ourStore()
      const result = await oursResync(store, data.prefixes)
      result.sync.close()
      await store.close()
      if (result.keys !== count) throw new Error(`${label}: ${side} got ${result.keys} keys`)
      return { ms: result.ms, cpuMs: result.cpuMs }
    },
    (r) => `${ms(r.ms)} (CPU ${ms(r.cpuMs)})`,
  )
  await backend.clear(data.root)
  const row = (workload: string, pick: (r: Result) => number, target?: Row['target']): Row => {
    const twoRuns = times.ours.map(pick)
    const oneRuns = times.raw.map(pick)
    return {
      workload,
      backend: backend.label,
      ours: ms(median(twoRuns)),
      raw: ms(median(oneRuns)),
      ratio: pairedRatio(twoRuns, oneRuns),
      ...(target ? { target } : {}),
    }
  }
  const k = `${count / 1000}k`
  return [
    row(`resync ${k} split over 2 sources (raw: 1 store)`, (r) => r.ms, { op: '<=', value: 1.2 }),
    row(`resync ${k} split: CPU of the client process`, (r) => r.cpuMs),
  ]
}
