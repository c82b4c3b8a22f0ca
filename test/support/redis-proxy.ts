/**
 * A TCP proxy for fault tests: clients connect to the proxy, which forwards to a server. `cut()`
 * drops every forwarded connection and refuses new ones (they are accepted and closed at once),
 * so a client stays disconnected until `restore()`; the server itself keeps running, and clients
 * that connect to it directly are not affected.
 */
import net from 'node:net'

export interface TcpProxy {
  /** The proxy's address (loopback). */
  readonly host: string
  readonly port: number
  /** The server it forwards to. */
  readonly target: { readonly host: string; readonly port: number }
  /** How many client connections are forwarded now. */
  readonly connections: number
  /** True between cut() and restore(). */
  readonly isCut: boolean
  /** Drops every connection and refuses new ones until restore(). */
  cut(): void
  /** Forwards new connections again. */
  restore(): void
  /** Drops everything and stops listening. Idempotent. */
  close(): Promise<void>
}

/** Starts a proxy on a free loopback port forwarding to `target`. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>()
  let isCut = false
  let closed = false

  const server = net.createServer((client) => {
    if (isCut || closed) {
      client.destroy()
      return
    }
    const upstream = net.connect({ host: target.host, port: target.port })
    const pair = { client, upstream }
    pairs.add(pair)
    const drop = () => {
      pairs.delete(pair)
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
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address() as net.AddressInfo

  const dropAll = () => {
    for (const { client, upstream } of [...pairs]) {
      client.destroy()
      upstream.destroy()
    }
    pairs.clear()
  }

  return {
    host: '127.0.0.1',
    port: address.port,
    target: { host: target.host, port: target.port },
    get connections() {
      return pairs.size
    },
    get isCut() {
      return isCut
    },
    cut() {
      isCut = true
      dropAll()
    },
    restore() {
      isCut = false
    },
    close() {
      if (closed) return Promise.resolve()
      closed = true
      dropAll()
      return new Promise((resolve) => {
        server.close(() => {
          resolve()
        })
      })
    },
  }
}
