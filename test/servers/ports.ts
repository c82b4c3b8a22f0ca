/**
 * Free loopback TCP ports for test servers.
 *
 * A port is found by binding 127.0.0.1:0, reading the port the kernel chose and closing the
 * socket again. Between closing it and the server binding it another process could take it; on a
 * test machine that is rare enough, and a server that fails to bind fails its readiness probe
 * with its log in the error.
 */
import net from 'node:net'

export const LOOPBACK = '127.0.0.1'

function listenOnEphemeralPort(): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', reject)
    server.listen({ host: LOOPBACK, port: 0, exclusive: true }, () => {
      server.off('error', reject)
      resolve(server)
    })
  })
}

function portOf(server: net.Server): number {
  const address = server.address()
  if (address === null || typeof address === 'string') {
    throw new Error(`unexpected server address ${String(address)}`)
  }
  return address.port
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((err) => {
      if (err) reject(err)
      else resolve()
    })
  })
}

/** One free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1)
  return port!
}

/**
 * `count` distinct free TCP ports on 127.0.0.1. All sockets are held open together until every
 * port is known, so the ports are distinct from each other.
 */
export async function freePorts(count: number): Promise<number[]> {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`bad port count ${count}`)
  const servers: net.Server[] = []
  try {
    for (let i = 0; i < count; i++) servers.push(await listenOnEphemeralPort())
    return servers.map(portOf)
  } finally {
    await Promise.all(servers.map(close))
  }
}

/**
 * Resolves with the error code of a failed TCP connection to host:port (e.g. `ECONNREFUSED`), or
 * `undefined` when the connection is accepted.
 */
export function connectError(
  port: number,
  host = LOOPBACK,
  timeoutMs = 1_000,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port })
    const done = (code: string | undefined): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(code)
    }
    const timer = setTimeout(() => {
      done('ETIMEDOUT')
    }, timeoutMs)
    socket.once('connect', () => {
      done(undefined)
    })
    socket.once('error', (err: NodeJS.ErrnoException) => {
      done(err.code ?? err.message)
    })
  })
}

/** True when a TCP connection to host:port is accepted within `timeoutMs`. */
export async function canConnect(
  port: number,
  host = LOOPBACK,
  timeoutMs = 1_000,
): Promise<boolean> {
  return (await connectError(port, host, timeoutMs)) === undefined
}
