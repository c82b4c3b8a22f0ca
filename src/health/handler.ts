import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Subscription } from 'rxjs'
import type { Health, HealthReport } from './health.js'
import type { DatasyncMetrics } from './metrics.js'

/** Options of {@link createHealthHandler}. */
export interface HealthHandlerOptions {
  /** Answers the readiness and liveness paths from it. @default none (those paths are not served) */
  readonly health?: Health
  /** Answers `GET /metrics` (Prometheus text) from it. @default none */
  readonly metrics?: DatasyncMetrics
}

/**
 * A request handler for an existing server: a Node `(request, response)` listener that is also
 * Express/Connect middleware (`(request, response, next)`: a path it does not serve goes to
 * `next()`), and that a fastify route hands its raw request and reply to.
 */
export interface HealthHandler {
  (request: IncomingMessage, response: ServerResponse, next?: (error?: unknown) => void): void
  /**
   * From now on readiness answers 503 with `"draining": true` in the report (liveness does not
   * change): load balancers stop sending traffic while the process finishes what it has. Used by
   * {@link onShutdown} on SIGTERM. Idempotent.
   */
  drain(): void
  /** Whether {@link drain} was called. */
  readonly draining: boolean
  /** Stops following the health's report. Idempotent. */
  close(): void
}

/** The readiness paths: the Go probe plugin's and Kubernetes's. */
export const READINESS_PATHS: readonly string[] = ['/readiness', '/readyz']
/** The liveness paths: the Go probe plugin's and Kubernetes's. */
export const LIVENESS_PATHS: readonly string[] = ['/liveness', '/livez']

/**
 * Makes the probe and metrics handler that {@link serveHealth} serves, to mount in a server the
 * application already runs:
 *
 * - `GET /readiness` (or `/readyz`): 200 when the report is `ready`, else 503.
 * - `GET /liveness` (or `/livez`): 200 when the report is `live`, else 503.
 * - `GET /metrics`: Prometheus text; 501 when prom-client is not installed.
 *
 * Probes answer with the whole report as JSON at once (the latest one: the handler follows
 * `report$` from its creation until {@link HealthHandler.close}). `HEAD` works too; other methods
 * on these paths get 405. Any other path goes to `next()` when given, else gets 404. Paths are
 * matched after the mount point (Express strips it: `app.use('/health', handler)` serves
 * `/health/readyz`).
 *
 * @example
 * ```ts
 * // node:http
 * const probes = createHealthHandler({ health, metrics })
 * http.createServer((req, res) => (req.url?.startsWith('/api') ? api(req, res) : probes(req, res)))
 * // Express
 * app.use(probes)
 * // fastify: hand it the raw request and response
 * fastify.get('/readyz', (request, reply) => {
 *   reply.hijack()
 *   probes(request.raw, reply.raw)
 * })
 * ```
 */
export function createHealthHandler(options: HealthHandlerOptions = {}): HealthHandler {
  const { health, metrics } = options
  let latest: HealthReport | undefined
  let draining = false
  let following: Subscription | undefined = health?.report$.subscribe((report) => {
    latest = report
  })

  const answer = async (
    request: IncomingMessage,
    response: ServerResponse,
    next: ((error?: unknown) => void) | undefined,
  ): Promise<void> => {
    const path = (request.url ?? '/').split('?')[0] ?? '/'
    const head = request.method === 'HEAD'
    const send = (status: number, type: string, body: string) => {
      response.writeHead(status, {
        'content-type': type,
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
      })
      response.end(head ? undefined : body)
    }
    const readiness = READINESS_PATHS.includes(path)
    const liveness = LIVENESS_PATHS.includes(path)
    const served =
      (health !== undefined && (readiness || liveness)) ||
      (metrics !== undefined && path === '/metrics')
    if (!served) {
      if (next) {
        next()
        return
      }
      const paths = [
        ...(health ? [...READINESS_PATHS, ...LIVENESS_PATHS] : []),
        ...(metrics ? ['/metrics'] : []),
      ]
      send(404, 'text/plain; charset=utf-8', `not found; this server answers ${paths.join(', ')}\n`)
      return
    }
    if (request.method !== 'GET' && !head) {
      response.setHeader('allow', 'GET, HEAD')
      send(405, 'text/plain; charset=utf-8', 'method not allowed; use GET\n')
      return
    }
    if (readiness || liveness) {
      // Before the first report (a health with nothing added answers at once): starting.
      const report: HealthReport & { draining?: true } = latest ?? {
        state: 'starting',
        ready: false,
        live: true,
        components: {},
      }
      if (readiness && draining) {
        send(
          503,
          'application/json',
          `${JSON.stringify({ ...report, ready: false, draining: true })}\n`,
        )
        return
      }
      const ok = readiness ? report.ready : report.live
      send(ok ? 200 : 503, 'application/json', `${JSON.stringify(report)}\n`)
      return
    }
    try {
      send(
        200,
        (metrics as DatasyncMetrics).contentType,
        await (metrics as DatasyncMetrics).prometheus(),
      )
    } catch (error) {
      send(
        501,
        'text/plain; charset=utf-8',
        `${error instanceof Error ? error.message : String(error)}\n`,
      )
    }
  }

  const handler = (
    request: IncomingMessage,
    response: ServerResponse,
    next?: (error?: unknown) => void,
  ): void => {
    answer(request, response, next).catch((error: unknown) => {
      if (next) next(error)
      else response.destroy()
    })
  }
  Object.defineProperties(handler, {
    drain: {
      value: () => {
        draining = true
      },
    },
    draining: { get: () => draining },
    close: {
      value: () => {
        following?.unsubscribe()
        following = undefined
      },
    },
  })
  return handler as HealthHandler
}
