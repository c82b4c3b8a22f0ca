/** The Redis side of the benchmarks: the raw ioredis client's code, and our Redis store. */
import type { Redis } from 'ioredis'
import { firstValueFrom } from 'rxjs'
import { createRedisStore } from 'rx-datasync/redis'
import type { RedisServer } from '../../test/servers/index.js'
import type { Backend } from './backend.js'
import { rawRedis, rawRedisRead, rawRedisWatch } from './raw-redis.js'
import { inBatches, valueText } from './data.js'
import { measure } from './stats.js'

/**
 * `watchMemory`: our store's option (see `RedisStoreOptions.watchMemory`); undefined for the
 * store's default (the row's backend is then `redis`).
 */
export function redisBackend(server: RedisServer, watchMemory?: 'values' | 'lean'): Backend {
  const port = server.port
  const storeOptions = watchMemory === undefined ? {} : { watchMemory }
  let client: Redis | undefined
  const main = async () => (client ??= await rawRedis(port))
  return {
    name: 'redis',
    label: watchMemory === undefined ? 'redis' : `redis ${watchMemory}`,
    storeOptions,
    endpoint: String(port),

    async version() {
      const info = await (await main()).info('server')
      return /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown'
    },

    async load(data, generation = 0) {
      const redis = await main()
      await inBatches(data.count, 1000, 4, async (from, to) => {
        const args: string[] = []
        for (let i = from; i < to; i++) args.push(data.key(i), valueText(i, generation))
        await redis.mset(...args)
      })
    },

    async clear(root) {
      const redis = await main()
      let cursor = '0'
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${root}/*`, 'COUNT', 5000)
        cursor = next
        if (keys.length > 0) await redis.unlink(...keys)
      } while (cursor !== '0')
    },

    async rawResync(prefixes) {
      // Timed from before the connection opens, as our side's is: a watch opens connections of
      // its own (a subscriber and a reader), and so does any hand-written resync from scratch.
      let fresh: Redis | undefined
      const {
        value: listing,
        ms,
        cpuMs,
      } = await measure(async () => {
        fresh = await rawRedis(port)
        return rawRedisRead(fresh, prefixes)
      })
      return {
        ms,
        cpuMs,
        listing,
        close: async () => {
          fresh?.disconnect()
          await Promise.resolve()
        },
      }
    },

    async ourStore() {
      const store = createRedisStore({ node: { host: '127.0.0.1', port }, ...storeOptions })
      await firstValueFrom(store.get('bench/warm-up'), { defaultValue: undefined })
      return store
    },

    rawWatch(prefix, onPut) {
      return rawRedisWatch(port, prefix, onPut)
    },

    async rawPut(key, value) {
      await (await main()).set(key, value)
    },

    async close() {
      client?.disconnect()
      client = undefined
      await Promise.resolve()
    },
  }
}
