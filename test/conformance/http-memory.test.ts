/**
 * The conformance suite through createHttpStore against a served memory store. The client
 * reaches the server through a loopback TCP proxy, so `fault.interrupt()` cuts only its
 * connections; the writer is the served memory store itself.
 */
import { createMemoryStore } from '../../src/index.js'
import { serveStore } from '../../src/http/index.js'
import { createHttpStore } from '../../src/http/client/index.js'
import { startTcpProxy } from '../support/tcp-proxy.js'
import { describeStore } from './suite.js'

describeStore(
  'http over memory',
  async () => {
    const upstream = createMemoryStore()
    const server = await serveStore(upstream)
    const proxy = await startTcpProxy(server.port)
    const store = createHttpStore(proxy.url, { reconnectInterval: '300ms' })
    return {
      store,
      writer: upstream,
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
      },
    }
  },
  { faults: true },
)
