/**
 * Watch throughput: a separate process writes `count` new keys in batches with the raw client;
 * the figure is changes delivered per second to one consumer (ours: one json() consumer acking
 * each event; raw: an etcd3 watcher counting 'put' events, or PSUBSCRIBE + GET per event, each
 * value JSON.parsed), from the writer's go to the last change delivered.
 */
import { performance } from 'node:perf_hooks'
import type { Backend } from '../lib/backend.js'
import { startChild } from '../lib/child.js'
import { median, pairedRatio, perSecond, type Row } from '../lib/stats.js'
import type { WriterInput } from '../children/writer.js'
import { alternate, runName, startWatcher, waitFor, type Settings } from './common.js'

export interface ThroughputOptions {
  readonly count: number
  readonly batch: number
  readonly concurrency: number
}

interface Result {
  readonly rate: number
  readonly writerRate: number
  /** CPU time of this process (the consumer's) per change, in microseconds. */
  readonly cpuPerChange: number
}

export async function throughputWorkload(
  backend: Backend,
  options: ThroughputOptions,
  settings: Settings,
): Promise<Row[]> {
  const root = 'bench-tp'
  await backend.clear(root)
  const label = `throughput ${backend.label}`
  const results = await alternate<Result>(
    settings,
    label,
    async (side, run) => {
      const prefix = `${root}/${runName(side, run)}/`
      let delivered = 0
      const seen = new Set<string>()
      const progress = waitFor(() => seen.size >= options.count, 300_000, `${label} deliveries`)
      const onPut = (key: string) => {
        delivered++
        seen.add(key)
        progress.poke()
      }
      const close = await startWatcher(backend, side, prefix, onPut)
      const input: WriterInput = {
        backend: backend.name,
        endpoint: backend.endpoint,
        prefix,
        count: options.count,
        batch: options.batch,
        concurrency: options.concurrency,
      }
      const writer = startChild('writer', input)
      await writer.next('ready')
      const cpu = process.cpuUsage()
      const start = performance.now()
      writer.send({ type: 'go' })
      await progress.done
      const elapsed = performance.now() - start
      const used = process.cpuUsage(cpu)
      const { ms: writerMs } = await writer.next<{ type: 'done'; ms: number }>('done')
      await writer.exited
      await close()
      await backend.clear(root)
      if (delivered !== options.count) {
        throw new Error(`${label} ${side}: ${delivered} deliveries for ${options.count} writes`)
      }
      return {
        rate: (options.count / elapsed) * 1000,
        writerRate: (options.count / writerMs) * 1000,
        cpuPerChange: (used.user + used.system) / options.count,
      }
    },
    (r) =>
      `${perSecond(r.rate)} (writer ${perSecond(r.writerRate)}), CPU ${r.cpuPerChange.toFixed(1)} µs/change`,
  )
  const rates = { ours: results.ours.map((r) => r.rate), raw: results.raw.map((r) => r.rate) }
  const cpu = {
    ours: results.ours.map((r) => r.cpuPerChange),
    raw: results.raw.map((r) => r.cpuPerChange),
  }
  const ours = median(rates.ours)
  const raw = median(rates.raw)
  const oursCpu = median(cpu.ours)
  const rawCpu = median(cpu.raw)
  return [
    {
      workload: `watch throughput, ${options.count / 1000}k changes`,
      backend: backend.label,
      ours: perSecond(ours),
      raw: perSecond(raw),
      ratio: pairedRatio(rates.ours, rates.raw),
      target: { op: '>=', value: 0.8 },
    },
    {
      workload: 'watch CPU per change (consumer process)',
      backend: backend.label,
      ours: `${oursCpu.toFixed(1)} µs`,
      raw: `${rawCpu.toFixed(1)} µs`,
      ratio: pairedRatio(cpu.ours, cpu.raw),
    },
  ]
}
