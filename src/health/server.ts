import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createHealthHandler } from './handler.js'
import type { Health } from './health.js'
import type { DatasyncMetrics } from './metrics.js'

/** Options of {@link serveHealth}. */
export interface HealthServerOptions {
  /** Serves `GET /readiness` (`/readyz`) and `GET /liveness` (`/livez`) from it. @default none (404) */
  readonly health?: Health
  /** Serves `GET /metrics` (Prometheus text) from it. @default none (404) */
  readonly metrics?: DatasyncMetrics
  /** The TCP port; 0 picks a free one (read it from {@link HealthServer.port}). @default 9191 */
  readonly port?: number
  /** The address to listen on, e.g. `'127.0.0.1'`. @default every interface */
  readonly host?: string
}

/** A running probe server. */
export interface HealthServer {
  /** The port it listens on. */
  readonly port: number
  /** Its base URL, e.g. `http://127.0.0.1:9191` (the loopback address when on every interface). */
  readonly url: string
  /** Readiness answers 503 from now on (the handler's `drain()`, which {@link onShutdown} calls). */
  drain(): void
  /** Stops listening, ends open connections and stops following the health. Idempotent. */
  close(): Promise<void>
}

/**
 * Serves readiness and liveness probes and Prometheus metrics over HTTP (node:http):
 *
 * - `GET /readiness` (or `/readyz`): 200 when the report is `ready` (every critical component
 *   ok), else 503.
 * - `GET /liveness` (or `/livez`): 200 when the report is `live` (no critical component failed),
 *   else 503.
 * - `GET /metrics`: the metrics in Prometheus text; 501 when prom-client is not installed.
 *
 * Both probes answer with the whole {@link HealthReport} as JSON, each component's state listed,
 * as the Go probe plugin does. A probe never waits for a check: the server follows `report$`
 * while it runs (checks run on their interval, each bounded by its timeout) and answers with the
 * latest report. `HEAD` works too; other methods get 405, other paths 404. To serve the same
 * from a server the application already runs (node:http, Express, fastify), mount
 * {@link createHealthHandler} instead.
 *
 * @example
 * ```ts
 * import { createDatasync, createMemoryStore } from 'rx-datasync'
 * import { createHealth, createMetrics, serveHealth } from 'rx-datasync/health'
 * const store = createMemoryStore()
 * const sync = createDatasync(store)
 * const health = createHealth().addStore('memory', store).addDatasync('sync', sync)
 * const metrics = createMetrics()
 * metrics.track('sync', sync)
 * const server = await serveHealth({ health, metrics, port: 9191 })
 * sync.start()
 * // curl -i http://127.0.0.1:9191/readiness
 * await server.close()
 * ```
 *
 * @throws Error (as a rejection) when the port cannot be listened on (EADDRINUSE, EACCES).
 */
export async function serveHealth(options: HealthServerOptions = {}): Promise<HealthServer> {
  const port = options.port ?? 9191
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new TypeError(`serveHealth: port: expected an integer from 0 to 65535, got ${port}`)
  }
  const handler = createHealthHandler(options)
  const server = createServer(handler)

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, options.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (error) {
    handler.close()
    throw error
  }

  const address = server.address() as AddressInfo
  const host =
    options.host === undefined || options.host === '' || options.host === '0.0.0.0'
      ? '127.0.0.1'
      : options.host === '::'
        ? '[::1]'
        : options.host.includes(':')
          ? `[${options.host}]`
          : options.host
  let closing: Promise<void> | undefined
  return {
    port: address.port,
    url: `http://${host}:${address.port}`,
    drain() {
      handler.drain()
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        handler.close()
        server.close(() => {
          resolve()
        })
        server.closeAllConnections()
      })
      return closing
    },
  }
}
