/**
 * HTTP: `createHttpStore` against a memory store served by `serveStore`. The client reaches the
 * server through a TCP proxy; the writer and the reader are the served store itself. Faults:
 * connection cuts, and the HTTP server closed and served again on its port (the client relists
 * or resumes with Last-Event-ID).
 */
import { createMemoryStore, type KvStore } from '../../../src/index.js'
import { serveStore } from '../../../src/http/index.js'
import { createHttpStore } from '../../../src/http/client/index.js'
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js'
import { hold, readText, type Fault, type Target } from '../target.js'

type Served = Awaited<ReturnType<typeof serveStore>>

export function httpTarget(): Target {
  let upstream: KvStore | undefined
  let server: Served | undefined
  let proxy: TcpProxy | undefined
  let port = 0
  const faults: Fault[] = [
    {
      kind: 'cut',
      run: async (_, holdMs) => {
        await proxy!.interrupt()
        await hold(holdMs)
        await proxy!.restore()
      },
    },
    {
      kind: 'server restart',
      run: async (_, holdMs) => {
        await server!.close()
        server = undefined
        await hold(holdMs)
        server = await serveStore(upstream!, { port })
      },
    },
  ]
  return {
    name: 'http',
    faults,
    root: (id) => `${id}/`,
    async start() {
      upstream = createMemoryStore()
      server = await serveStore(upstream)
      port = server.port
      proxy = await startTcpProxy(port)
    },
    open() {
      const store = createHttpStore(proxy!.url, { reconnectInterval: '300ms' })
      const direct = upstream!
      return Promise.resolve({
        store,
        writer: direct,
        read: (prefix) => readText(direct, prefix),
        close: () => store.close(),
      })
    },
    async heal() {
      await proxy?.restore()
      server ??= await serveStore(upstream!, { port })
    },
    async stop() {
      await proxy?.close()
      await server?.close()
      await upstream?.close()
    },
  }
}
