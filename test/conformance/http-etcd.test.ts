/**
 * The conformance suite through createHttpStore against a served etcd store (a real etcd from
 * the harness). Each test serves its own prefix from a fresh server; the client reaches it
 * through a loopback TCP proxy (`fault` cuts only the client's connections), and the writer is
 * a second etcd store connected to etcd directly.
 */
import { afterAll, beforeAll, describe } from 'vitest'
import { createEtcdStore } from '../../src/backends/etcd/index.js'
import { serveStore } from '../../src/http/index.js'
import { createHttpStore } from '../../src/http/client/index.js'
import { startEtcd, type EtcdServer } from '../servers/index.js'
import { startTcpProxy } from '../support/tcp-proxy.js'
import { describeStore } from './suite.js'

const SERVER_START_MS = 180_000

describe('http over etcd', { timeout: 90_000 }, () => {
  let etcd: EtcdServer | undefined
  beforeAll(async () => {
    etcd = await startEtcd()
  }, SERVER_START_MS)
  afterAll(async () => {
    await etcd?.cleanup()
  }, SERVER_START_MS)

  describeStore(
    'http over etcd (one member)',
    async (prefix) => {
      if (etcd === undefined) throw new Error('etcd did not start')
      const upstream = createEtcdStore({ endpoints: [...etcd.endpoints] })
      const writer = createEtcdStore({ endpoints: [...etcd.endpoints] })
      const server = await serveStore(upstream, { prefixes: [prefix] })
      const proxy = await startTcpProxy(server.port)
      const store = createHttpStore(proxy.url, { reconnectInterval: '300ms' })
      return {
        store,
        writer,
        fault: {
          interrupt: () => proxy.interrupt(),
          restore: () => proxy.restore(),
        },
        activeWatches: () => server.metrics().clients,
        close: async () => {
          await store.close()
          await proxy.close()
          await server.close()
          await upstream.close()
          await writer.close()
        },
      }
    },
    { faults: true, convergeMs: 30_000 },
  )
})
