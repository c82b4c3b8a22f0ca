/** The raw ioredis client's code of the benchmarks (no rx-datasync import: memory children load it alone). */
import { Redis } from 'ioredis'
import type { RawListing, RawWatcher } from './backend.js'

/** The COUNT hint of the raw SCAN: the store's default `scanCount`. */
export const RAW_SCAN_COUNT = 1000

/** A plain ioredis connection, connected. */
export async function rawRedis(port: number): Promise<Redis> {
  const client = new Redis({ host: '127.0.0.1', port, protocol: 2, lazyConnect: true })
  client.on('error', () => undefined)
  await client.connect()
  return client
}

/**
 * The raw client's resync of `prefixes`: SCAN ... MATCH prefix* page by page, an MGET of each
 * page's keys, every value JSON.parsed into a Map.
 */
export async function rawRedisRead(
  client: Redis,
  prefixes: readonly string[],
  count = RAW_SCAN_COUNT,
): Promise<RawListing> {
  const listing: RawListing = []
  for (const prefix of prefixes) {
    const map = new Map<string, unknown>()
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', count)
      cursor = next
      if (keys.length > 0) {
        const values = await client.mgetBuffer(...keys)
        keys.forEach((key, i) => {
          const value = values[i]
          if (value) map.set(key, JSON.parse(value.toString()))
        })
      }
    } while (cursor !== '0')
    listing.push(map)
  }
  return listing
}

/**
 * A raw watcher: PSUBSCRIBE to the keyspace notifications of `prefix*`, and a GET on a second
 * connection for every `set` event.
 */
export async function rawRedisWatch(
  port: number,
  prefix: string,
  onPut: (key: string, value: unknown) => void,
): Promise<RawWatcher> {
  const sub = await rawRedis(port)
  const reader = await rawRedis(port)
  const channelPrefix = '__keyspace@0__:'
  sub.on('pmessage', (_pattern: string, channel: string, event: string) => {
    if (event !== 'set') return
    const key = channel.slice(channelPrefix.length)
    void reader.getBuffer(key).then((value) => {
      if (value) onPut(key, JSON.parse(value.toString()))
    })
  })
  await sub.psubscribe(`${channelPrefix}${prefix}*`)
  return {
    close: async () => {
      sub.disconnect()
      reader.disconnect()
      await Promise.resolve()
    },
  }
}
