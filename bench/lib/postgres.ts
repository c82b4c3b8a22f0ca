/**
 * The PostgreSQL side of the benchmarks: hand-written `pg` code on the store's own table (the same
 * reads and writes the store makes, see postgres-raw.ts), and our PostgreSQL store. Both sides read
 * one table, `rx_datasync_kv`, created by our store before anything runs.
 */
import type pg from 'pg'
import { firstValueFrom, lastValueFrom } from 'rxjs'
import { createPostgresStore, type PostgresStore } from 'rx-datasync/postgres'
import type { PostgresServer } from '../../test/servers/postgres.js'
import type { Backend } from './backend.js'
import { inBatches, valueText } from './data.js'
import { rawPostgres, rawPostgresRead, rawPostgresWatch, rawPutMany } from './postgres-raw.js'
import { measure } from './stats.js'

export function postgresBackend(server: PostgresServer): Backend {
  const port = server.port
  let client: pg.Client | undefined
  let admin: PostgresStore | undefined
  /** A raw client, after our store created the table. */
  const main = async () => {
    if (admin === undefined) {
      admin = createPostgresStore({ host: '127.0.0.1', port })
      await firstValueFrom(admin.get('bench/warm-up'), { defaultValue: undefined })
    }
    return (client ??= await rawPostgres(port))
  }
  return {
    name: 'postgres',
    label: 'postgres',
    storeOptions: {},
    endpoint: String(port),

    async version() {
      const result = await (await main()).query<{ server_version: string }>('SHOW server_version')
      return result.rows[0]?.server_version ?? 'unknown'
    },

    async load(data, generation = 0) {
      await main()
      // Writers of one table serialize on its counter row: one connection is as fast as four.
      await inBatches(data.count, 2000, 1, async (from, to) => {
        const entries: [string, string][] = []
        for (let i = from; i < to; i++) entries.push([data.key(i), valueText(i, generation)])
        await rawPutMany(await main(), entries)
      })
    },

    async clear(root) {
      await main()
      if (admin === undefined) throw new Error('postgres bench: no store')
      await lastValueFrom(admin.delete(`${root}/`, { prefix: true }))
      await lastValueFrom(admin.compact())
      await (await main()).query('VACUUM ANALYZE rx_datasync_kv')
    },

    async rawResync(prefixes) {
      // Timed from before the connection opens, as our side's is (our watch opens its own).
      let fresh: pg.Client | undefined
      const {
        value: listing,
        ms,
        cpuMs,
      } = await measure(async () => {
        fresh = await rawPostgres(port)
        return rawPostgresRead(fresh, prefixes)
      })
      return {
        ms,
        cpuMs,
        listing,
        close: async () => {
          await fresh?.end()
        },
      }
    },

    async ourStore() {
      await main()
      const store = createPostgresStore({ host: '127.0.0.1', port })
      await firstValueFrom(store.get('bench/warm-up'), { defaultValue: undefined })
      return store
    },

    async rawWatch(prefix, onPut) {
      await main()
      return rawPostgresWatch(port, prefix, onPut)
    },

    async rawPut(key, value) {
      await rawPutMany(await main(), [[key, value]])
    },

    async close() {
      await client?.end().catch(() => undefined)
      client = undefined
      await admin?.close()
      admin = undefined
    },
  }
}
