/**
 * A loopback TCP proxy for fault tests: clients connect to the proxy instead of the server, and
 * the test can cut every connection through it (`interrupt`) and let them in again (`restore`).
 * Other clients that talk to the server directly are not affected.
 */
import net from 'node:net'
import { LOOPBACK } from '../servers/index.js'

export interface TcpProxy {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number
  /** `http://127.0.0.1:<port>`, for clients that want a URL. */
  readonly url: string
  /** Connections open through the proxy now. */
  readonly connections: number
  /** Whether the proxy is cut. */
  readonly interrupted: boolean
  /**
   * Destroys every connection through the proxy and refuses new ones (each is accepted and
   * closed at once) until {@link restore}.
   */
  interrupt(): Promise<void>
  /** Lets connections through again. */
  restore(): Promise<void>
  /** Changes where new connections go (existing ones are left alone). */
  retarget(port: number, host?: string): void
  /** Destroys every connection and stops listening. Idempotent. */
  close(): Promise<void>
}

/** Starts a proxy on a free loopback port that forwards to `host:port`. */
export async function startTcpProxy(targetPort: number, targetHost = LOOPBACK): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>()
  let interrupted = false
  let closed = false
  let target = { port: targetPort, host: targetHost }

  const server = net.createServer((client) => {
    if (interrupted) {
      client.on('error', () => undefined)
      client.resetAndDestroy()
      return
    }
    const upstream = net.connect(target.port, target.host)
    sockets.add(client)
    sockets.add(upstream)
    const drop = () => {
      sockets.delete(client)
      sockets.delete(upstream)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', drop)
    upstream.on('error', drop)
    client.on('close', drop)
    upstream.on('close', drop)
    client.pipe(upstream)
    upstream.pipe(client)
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, LOOPBACK, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('proxy: no TCP address')
  const port = address.port

  const cutAll = () => {
    for (const socket of sockets) {
      // A reset, as a network fault or a dead host looks to the client.
      if (socket.destroyed) continue
      try {
        socket.resetAndDestroy()
      } catch {
        socket.destroy()
      }
    }
    sockets.clear()
  }

  return {
    port,
    url: `http://${LOOPBACK}:${port}`,
    get connections() {
      return [...sockets].filter((socket) => !socket.destroyed).length / 2
    },
    get interrupted() {
      return interrupted
    },
    interrupt() {
      interrupted = true
      cutAll()
      return Promise.resolve()
    },
    restore() {
      interrupted = false
      return Promise.resolve()
    },
    retarget(nextPort: number, host = LOOPBACK) {
      target = { port: nextPort, host }
    },
    async close() {
      if (closed) return
      closed = true
      interrupted = true
      cutAll()
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve()
        })
      })
    },
  }
}
