/**
 * The conformance suite against a real PostgreSQL 15 server of this file's own. The store under
 * test reaches it through a loopback TCP proxy, so `fault.interrupt()` cuts only its connections
 * while the writer (a second store connected directly) keeps writing. Watches are counted on the
 * server by their connections' application_name.
 */
import { afterAll, beforeAll, describe } from 'vitest'
import { createPostgresStore } from '../../src/backends/postgres/index.js'
import { WATCH_APPLICATION } from '../../src/backends/postgres/connection.js'
import { bytes, withCodec, withPrefix } from '../../src/index.js'
import { pollUntil } from '../servers/index.js'
import { startPostgres, type PostgresServer } from '../servers/postgres.js'
import { startTcpProxy } from '../support/tcp-proxy.js'
import { describeStore, type StoreFixture } from './suite.js'

const SERVER_START_MS = 120_000

describe('postgres', { timeout: 90_000 }, () => {
  let server: PostgresServer | undefined
  beforeAll(async () => {
    server = await startPostgres()
  }, SERVER_START_MS)
  afterAll(async () => {
    await server?.cleanup()
  }, SERVER_START_MS)

  async function fixture(): Promise<StoreFixture> {
    if (server === undefined) throw new Error('postgres did not start')
    const pgServer = server
    // Every watch of the previous test is gone, so counting watch connections is exact.
    await pollUntil(async () => (await pgServer.connections(WATCH_APPLICATION)) === 0, {
      description: 'the previous test’s watch connections to close',
    })
    const proxy = await startTcpProxy(pgServer.port)
    const store = createPostgresStore({
      ...pgServer.connection(),
      port: proxy.port,
      reconnectInterval: '500ms',
      reapInterval: '200ms',
    })
    const writer = createPostgresStore(pgServer.connection())
    return {
      store,
      writer,
      fault: {
        interrupt: () => proxy.interrupt(),
        restore: () => proxy.restore(),
      },
      activeWatches: () => pgServer.connections(WATCH_APPLICATION),
      close: async () => {
        await store.close()
        await writer.close()
        await proxy.close()
      },
    }
  }

  describeStore('postgres', fixture, { faults: true, convergeMs: 30_000 })

  describeStore(
    'postgres through withCodec(withPrefix(store, "view/"), bytes())',
    async () => {
      const base = await fixture()
      return {
        ...base,
        store: withCodec(withPrefix(base.store, 'view/'), bytes()),
        writer: withPrefix(base.writer ?? base.store, 'view/'),
      }
    },
    { faults: true, convergeMs: 30_000 },
  )
})
