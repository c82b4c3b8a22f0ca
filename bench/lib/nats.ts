/** The NATS side of the benchmarks: the raw @nats-io clients' code, and our NATS store. */
import type { NatsConnection } from '@nats-io/transport-node'
import type { KV } from '@nats-io/kv'
import { firstValueFrom } from 'rxjs'
import { createNatsStore } from 'rx-datasync/nats'
import type { NatsServer } from '../../test/servers/nats.js'
import type { Backend } from './backend.js'
import { inBatches, valueText } from './data.js'
import {
  BENCH_BUCKET,
  natsKey,
  rawNats,
  rawNatsClear,
  rawNatsPutMany,
  rawNatsRead,
  rawNatsWatch,
} from './nats-raw.js'
import { measure } from './stats.js'

export function natsBackend(server: NatsServer): Backend {
  const url = server.url
  let main: { nc: NatsConnection; kv: KV } | undefined
  const raw = async () => (main ??= await rawNats(url))
  return {
    name: 'nats',
    label: 'nats',
    storeOptions: {},
    endpoint: url,

    async version() {
      return (await raw()).nc.info?.version ?? 'unknown'
    },

    async load(data, generation = 0) {
      const { kv } = await raw()
      await inBatches(data.count, 1000, 4, async (from, to) => {
        const entries: [string, string][] = []
        for (let i = from; i < to; i++) entries.push([data.key(i), valueText(i, generation)])
        await rawNatsPutMany(kv, entries)
      })
    },

    async clear(root) {
      await rawNatsClear((await raw()).nc, root)
    },

    async rawResync(prefixes) {
      // Timed from before the connection opens, as our side's is (our store connects first).
      let fresh: NatsConnection | undefined
      const {
        value: listing,
        ms,
        cpuMs,
      } = await measure(async () => {
        fresh = (await rawNats(url)).nc
        return rawNatsRead(fresh, prefixes)
      })
      return { ms, cpuMs, listing, close: async () => fresh?.close() }
    },

    async ourStore() {
      await raw()
      const store = createNatsStore({ servers: url, bucket: BENCH_BUCKET })
      await firstValueFrom(store.get('bench/warm-up'), { defaultValue: undefined })
      return store
    },

    rawWatch(prefix, onPut) {
      return rawNatsWatch(url, prefix, onPut)
    },

    async rawPut(key, value) {
      await (await raw()).kv.put(natsKey(key), value)
    },

    async close() {
      await main?.nc.close()
      main = undefined
    },
  }
}
