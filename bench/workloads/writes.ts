/**
 * Writes (for information; the issue sets no target): puts per second through our store's
 * `put` against the raw client's put (etcd) or SET (Redis), `concurrency` puts in flight. Our
 * Redis store writes through a Lua script that also publishes the written value for watches.
 */
import { performance } from 'node:perf_hooks'
import { firstValueFrom } from 'rxjs'
import type { Backend } from '../lib/backend.js'
import { inBatches, valueText } from '../lib/data.js'
import { median, pairedRatio, perSecond, type Row } from '../lib/stats.js'
import { alternate, runName, type Settings } from './common.js'

export async function writesWorkload(
  backend: Backend,
  count: number,
  concurrency: number,
  settings: Settings,
): Promise<Row[]> {
  const root = 'bench-put'
  await backend.clear(root)
  const label = `writes ${backend.label}`
  const encoder = new TextEncoder()
  const rates = await alternate(
    settings,
    label,
    async (side, run) => {
      const key = (i: number) => `${root}/${runName(side, run)}/${String(i).padStart(7, '0')}`
      let put: (i: number) => Promise<void>
      let close = () => Promise.resolve()
      if (side === 'ours') {
        const store = await backend.ourStore()
        put = async (i) => {
          await firstValueFrom(store.put(key(i), encoder.encode(valueText(i))))
        }
        close = () => store.close()
      } else {
        put = (i) => backend.rawPut(key(i), valueText(i))
      }
      const start = performance.now()
      await inBatches(count, 1, concurrency, (from) => put(from))
      const rate = (count / (performance.now() - start)) * 1000
      await close()
      await backend.clear(root)
      return rate
    },
    perSecond,
  )
  const ours = median(rates.ours)
  const raw = median(rates.raw)
  return [
    {
      workload: `puts, ${concurrency} in flight`,
      backend: backend.label,
      ours: perSecond(ours),
      raw: perSecond(raw),
      ratio: pairedRatio(rates.ours, rates.raw),
    },
  ]
}
