/** The etcd side of the benchmarks: the raw etcd3 client's code, and our etcd store. */
import { Etcd3 } from 'etcd3'
import { firstValueFrom } from 'rxjs'
import { createEtcdStore } from 'rx-datasync/etcd'
import type { EtcdServer } from '../../test/servers/index.js'
import type { Backend, RawWatcher } from './backend.js'
import { rawEtcdRead } from './raw-etcd.js'
import { inBatches, valueText } from './data.js'
import { measure } from './stats.js'

/** Puts per transaction when loading (etcd's default --max-txn-ops is 128). */
const LOAD_TXN = 128

export function etcdBackend(server: EtcdServer): Backend {
  const endpoints = server.endpoints
  const client = new Etcd3({ hosts: endpoints })
  return {
    name: 'etcd',
    label: 'etcd',
    storeOptions: {},
    endpoint: endpoints.join(','),

    async version() {
      const status = await client.maintenance.status()
      return status.version
    },

    async load(data, generation = 0) {
      await inBatches(data.count, LOAD_TXN, 8, async (from, to) => {
        const success = []
        for (let i = from; i < to; i++) {
          success.push({
            request_put: {
              key: Buffer.from(data.key(i)),
              value: Buffer.from(valueText(i, generation)),
            },
          })
        }
        await client.kv.txn({ compare: [], success, failure: [] })
      })
    },

    async clear(root) {
      await client.delete().prefix(`${root}/`)
    },

    async rawResync(prefixes) {
      const fresh = new Etcd3({ hosts: endpoints })
      await fresh.get('bench/warm-up').string()
      const { value: listing, ms, cpuMs } = await measure(() => rawEtcdRead(fresh, prefixes))
      return {
        ms,
        cpuMs,
        listing,
        close: async () => {
          fresh.close()
          await Promise.resolve()
        },
      }
    },

    async ourStore() {
      const store = createEtcdStore({ endpoints })
      await firstValueFrom(store.get('bench/warm-up'), { defaultValue: undefined })
      return store
    },

    async rawWatch(prefix, onPut): Promise<RawWatcher> {
      const watcher = await client.watch().prefix(prefix).create()
      watcher.on('put', (kv) => {
        onPut(kv.key.toString(), JSON.parse(kv.value.toString()))
      })
      return { close: () => watcher.cancel() }
    },

    async rawPut(key, value) {
      await client.put(key).value(value)
    },

    close() {
      client.close()
      return Promise.resolve()
    },
  }
}
