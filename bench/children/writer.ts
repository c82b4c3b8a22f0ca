// The writer of the watch-throughput workload, a process of its own: with the raw client it
// writes `count` new keys under `prefix` in batches (one etcd transaction or one Redis MSET per
// batch, `concurrency` batches in flight), when the parent says go.
import { Etcd3 } from 'etcd3'
import { performance } from 'node:perf_hooks'
import { hear, tell } from '../lib/child.js'
import { inBatches, valueText } from '../lib/data.js'
import { rawRedis } from '../lib/raw-redis.js'

/** What the parent passes (JSON, first argument). */
export interface WriterInput {
  readonly backend: 'etcd' | 'redis' | 'postgres' | 'nats'
  readonly endpoint: string
  readonly prefix: string
  readonly count: number
  readonly batch: number
  readonly concurrency: number
}

const input = JSON.parse(process.argv[2] ?? '{}') as WriterInput
const key = (i: number) => `${input.prefix}${String(i).padStart(7, '0')}`

let write: (from: number, to: number) => Promise<void>
let close: () => void
if (input.backend === 'etcd') {
  const client = new Etcd3({ hosts: input.endpoint.split(',') })
  await client.get('bench/warm-up').string()
  write = async (from, to) => {
    const success = []
    for (let i = from; i < to; i++) {
      success.push({ request_put: { key: Buffer.from(key(i)), value: Buffer.from(valueText(i)) } })
    }
    await client.kv.txn({ compare: [], success, failure: [] })
  }
  close = () => {
    client.close()
  }
} else if (input.backend === 'nats') {
  // One publish per key (JetStream stores one message per put), a batch's publishes in flight.
  const { rawNats, rawNatsPutMany } = await import('../lib/nats-raw.js')
  const { nc, kv } = await rawNats(input.endpoint)
  write = async (from, to) => {
    const entries: [string, string][] = []
    for (let i = from; i < to; i++) entries.push([key(i), valueText(i)])
    await rawNatsPutMany(kv, entries)
  }
  close = () => {
    void nc.close()
  }
} else if (input.backend === 'postgres') {
  // The store's own transaction, by hand (bench/lib/postgres-raw.ts): one revision per batch.
  // One connection per batch in flight: a transaction needs a connection of its own.
  const { rawPostgres, rawPutMany } = await import('../lib/postgres-raw.js')
  const clients = await Promise.all(
    Array.from({ length: input.concurrency }, () => rawPostgres(Number(input.endpoint))),
  )
  write = async (from, to) => {
    const client = clients.pop()
    if (client === undefined) throw new Error('writer: more batches in flight than connections')
    const entries: [string, string][] = []
    for (let i = from; i < to; i++) entries.push([key(i), valueText(i)])
    try {
      await rawPutMany(client, entries)
    } finally {
      clients.push(client)
    }
  }
  close = () => {
    for (const client of clients) void client.end()
  }
} else {
  const client = await rawRedis(Number(input.endpoint))
  write = async (from, to) => {
    const args: string[] = []
    for (let i = from; i < to; i++) args.push(key(i), valueText(i))
    await client.mset(...args)
  }
  close = () => {
    client.disconnect()
  }
}

tell({ type: 'ready' })
await hear('go')
const start = performance.now()
await inBatches(input.count, input.batch, input.concurrency, write)
tell({ type: 'done', ms: performance.now() - start })
close()
process.disconnect()
