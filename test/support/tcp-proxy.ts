/**
 * A loopback TCP proxy for fault tests: clients connect to the proxy instead of the server, and
 * the test can cut every connection through it (`interrupt`) and let them in again (`restore`);
 * the server keeps running, and clients that talk to it directly are not affected. The proxy
 * also counts its connections and the Consul blocking queries (`?index=`) waiting through it.
 */
import net from 'node:net'
import { LOOPBACK } from '../servers/index.js'

/**
 * How `interrupt` (and `close`) end connections, and how connections that arrive while cut are
 * refused (accepted, then ended the same way): `'reset'` sends a TCP reset, as a network fault
 * or a dead host looks to the client; `'close'` destroys the socket, which closes it normally.
 */
export type CutMode = 'reset' | 'close'

/** Options of {@link startTcpProxy}. */
export interface TcpProxyOptions {
  /** How connections are cut and refused; `'reset'` by default. */
  readonly cutWith?: CutMode
}

/** A running proxy, from {@link startTcpProxy}. */
export interface TcpProxy {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number
  /** `127.0.0.1:<port>`, for clients that want `host:port` (`createConsulStore`). */
  readonly address: string
  /** `http://127.0.0.1:<port>`, for clients that want a URL (`createEtcdStore`). */
  readonly url: string
  /** Connections open through the proxy now. */
  readonly connections: number
  /** The most connections that were open through the proxy at once. */
  readonly peakConnections: number
  /**
   * HTTP/1 requests with `index=` in their query (Consul blocking queries) waiting through the
   * proxy now: a connection counts from such a request's head until the server starts answering
   * or either side closes. Always 0 for other protocols.
   */
  readonly blockingQueries: number
  /** Ends every connection through the proxy and refuses new ones until {@link restore}. */
  interrupt(): Promise<void>
  /** Lets connections through again. */
  restore(): Promise<void>
  /** Ends every connection and stops listening. Idempotent. */
  close(): Promise<void>
}

interface Pair {
  readonly client: net.Socket
  readonly upstream: net.Socket
  /** A blocking query was sent and its answer has not started. */
  waiting: boolean
}

const REQUEST_LINE = /^(GET|PUT|POST|DELETE|HEAD) (\S+) HTTP\/1\.[01]\r\n/

/** Starts a proxy on a free loopback port that forwards to `127.0.0.1:<targetPort>`. */
export async function startTcpProxy(
  targetPort: number,
  { cutWith = 'reset' }: TcpProxyOptions = {},
): Promise<TcpProxy> {
  const pairs = new Set<Pair>()
  let peak = 0
  let interrupted = false
  let closed = false

  const end = (socket: net.Socket) => {
    if (socket.destroyed) return
    if (cutWith === 'close') {
      socket.destroy()
      return
    }
    try {
      socket.resetAndDestroy()
    } catch {
      socket.destroy()
    }
  }

  const server = net.createServer((client) => {
    client.on('error', () => undefined)
    if (interrupted) {
      end(client)
      return
    }
    const upstream = net.connect(targetPort, LOOPBACK)
    upstream.on('error', () => undefined)
    const pair: Pair = { client, upstream, waiting: false }
    pairs.add(pair)
    peak = Math.max(peak, pairs.size)
    const drop = () => {
      pairs.delete(pair)
      pair.waiting = false
      client.destroy()
      upstream.destroy()
    }
    client.on('close', drop)
    upstream.on('close', drop)
    client.on('data', (chunk: Buffer) => {
      const line = REQUEST_LINE.exec(chunk.toString('latin1', 0, Math.min(chunk.length, 2048)))
      if (line !== null) pair.waiting = /[?&]index=/.test(line[2] ?? '')
    })
    upstream.on('data', () => {
      pair.waiting = false
    })
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
    for (const pair of pairs) {
      end(pair.client)
      end(pair.upstream)
    }
    pairs.clear()
  }

  return {
    port,
    address: `${LOOPBACK}:${port}`,
    url: `http://${LOOPBACK}:${port}`,
    get connections() {
      return [...pairs].filter((pair) => !pair.client.destroyed).length
    },
    get peakConnections() {
      return peak
    },
    get blockingQueries() {
      return [...pairs].filter((pair) => pair.waiting && !pair.client.destroyed).length
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
