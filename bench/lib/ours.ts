/** Our side of the benchmarks: the orchestrator over a store, with json() consumers that ack. */
import { performance } from 'node:perf_hooks'
import { filter, firstValueFrom, timeout } from 'rxjs'
import { createDatasync, json, type Consumer, type Datasync, type KvStore } from 'rx-datasync'
import type { Iface } from './data.js'
import { cpuMs } from './stats.js'

const IN_SYNC_TIMEOUT_MS = 300_000

/** Resolves when the orchestrator is in sync (every consumer acknowledged its resync). */
export function inSync(sync: Datasync<Uint8Array>): Promise<unknown> {
  return firstValueFrom(
    sync.status$.pipe(
      filter((status) => status.state === 'in-sync' || status.state === 'halted'),
      timeout(IN_SYNC_TIMEOUT_MS),
    ),
  ).then((status) => {
    if (status.state === 'halted') throw status.error ?? new Error('the orchestrator halted')
  })
}

/** Our resync: one consumer per prefix, registered in order, each acking its resync at once. */
export async function oursResync(
  store: KvStore,
  prefixes: readonly string[],
): Promise<{
  ms: number
  cpuMs: number
  keys: number
  sync: Datasync<Uint8Array>
  consumers: Consumer<Iface>[]
}> {
  const sync = createDatasync(store, { ackTimeout: '300s' })
  let keys = 0
  const consumers = prefixes.map((prefix, i) => {
    const consumer = sync.register(`consumer-${i}`, { prefixes: [prefix], codec: json<Iface>() })
    consumer.events$.subscribe((event) => {
      if (event.kind === 'resync') keys += event.items.length
      event.done()
    })
    return consumer
  })
  const ready = inSync(sync)
  const cpu = process.cpuUsage()
  const start = performance.now()
  sync.start()
  await ready
  const ms = performance.now() - start
  return { ms, cpuMs: cpuMs(process.cpuUsage(cpu)), keys, sync, consumers }
}

/**
 * Our watcher: one consumer of `prefix` that acks every event at once; `onPut` sees each put.
 * Resolves once the first resync is acknowledged.
 */
export async function oursWatch(
  store: KvStore,
  prefix: string,
  onPut: (key: string, value: Iface) => void,
): Promise<{ close: () => void }> {
  const sync = createDatasync(store, { ackTimeout: '300s' })
  const consumer = sync.register('watcher', { prefixes: [prefix], codec: json<Iface>() })
  consumer.events$.subscribe((event) => {
    if (event.kind === 'change') {
      for (const change of event.changes) if (change.op === 'put') onPut(change.key, change.value)
    }
    event.done()
  })
  const ready = inSync(sync)
  sync.start()
  await ready
  return {
    close: () => {
      sync.close()
    },
  }
}
