/**
 * A loopback TCP proxy in front of a Consul agent's HTTP port for fault tests, which also counts
 * the blocking queries (`GET /v1/kv/...?index=`) waiting on it: a connection counts from the
 * request head that asks with `index=` until the agent starts answering or either side closes.
 * `interrupt()` resets every connection and refuses new ones until `restore()`.
 */
import net from 'node:net'
import { LOOPBACK } from '../servers/ports.js'

export interface ConsulProxy {
  /** `127.0.0.1:<port>`: the address to give `createConsulStore`. */
  readonly address: string
  readonly port: number
  /** Blocking queries waiting for the agent's answer through the proxy now. */
  readonly blockingQueries: number
  /** Connections open through the proxy now. */
  readonly connections: number
  /** The most connections that were open through the proxy at once. */
  readonly peakConnections: number
  /** Resets every connection and refuses new ones (accepted and reset) until `restore`. */
  interrupt(): Promise<void>
  /** Lets connections through again. */
  restore(): Promise<void>
  /** Resets every connection and stops listening. Idempotent. */
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
export async function startConsulProxy(targetPort: number): Promise<ConsulProxy> {
  const pairs = new Set<Pair>()
  let peak = 0
  let interrupted = false
  let closed = false

  const server = net.createServer((client) => {
    client.on('error', () => undefined)
    if (interrupted) {
      client.resetAndDestroy()
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
      if (!upstream.write(chunk)) client.pause()
    })
    upstream.on('drain', () => client.resume())
    upstream.on('data', (chunk: Buffer) => {
      pair.waiting = false
      if (!client.write(chunk)) upstream.pause()
    })
    client.on('drain', () => upstream.resume())
    client.on('end', () => upstream.end())
    upstream.on('end', () => client.end())
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
      for (const socket of [pair.client, pair.upstream]) {
        if (socket.destroyed) continue
        try {
          // A reset, as a network fault looks to the client.
          socket.resetAndDestroy()
        } catch {
          socket.destroy()
        }
      }
    }
    pairs.clear()
  }

  return {
    address: `${LOOPBACK}:${port}`,
    port,
    get blockingQueries() {
      return [...pairs].filter((pair) => pair.waiting && !pair.client.destroyed).length
    },
    get connections() {
      return [...pairs].filter((pair) => !pair.client.destroyed).length
    },
    get peakConnections() {
      return peak
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
