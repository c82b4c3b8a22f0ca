import { createServer as createHttp, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createHttps } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { Observable } from 'rxjs'
import type { Revision } from '../../core/revision.js'
import type { KvStore, StoreStatus } from '../../core/store.js'
import { parseRevision } from '../wire.js'
import { HttpError, accessOf, applyCors, errorResponse } from './access.js'
import { Hub } from './hub.js'
import { Counters, prometheusText, type HttpServerMetrics } from './metrics.js'
import { resolveServerOptions, type HttpServerOptions } from './options.js'
import { param, readJson, restOperations } from './rest.js'
import { Session, type SessionOptions } from './session.js'

/** A running store server, from {@link serveStore}. */
export interface StoreServer {
  /** The port it listens on. */
  readonly port: number
  /** Its base URL, e.g. `http://127.0.0.1:8080` (`https:` with TLS). */
  readonly url: string
  /**
   * The served store's status (its `status$`): add the server to a health with
   * `createHealth().addStore('http', server)`.
   */
  readonly status$: Observable<StoreStatus>
  /** The counters now (clients, events sent, resumes, relists, cut slow clients…). */
  metrics(): HttpServerMetrics
  /** Stops listening and ends every stream; the store stays open (close it yourself). */
  close(): Promise<void>
}

/**
 * Serves a {@link KvStore} over HTTP(S): REST operations with JSON bodies, and watches as
 * Server-Sent Events fanned out from one upstream watch. Routes (keys and prefixes are query
 * parameters, values use the wire encoding of `src/http/README.md`):
 *
 * - `GET /v1/kv?key=K` → `{ item: {key, value, revision} | null }`
 * - `PUT /v1/kv?key=K` with `{ value, ttl? }` → `{}`
 * - `DELETE /v1/kv?key=K[&prefix=true]` → `{ deleted }`
 * - `GET /v1/list?prefix=P` → `{ items }`; `GET /v1/keys?prefix=P` → `{ keys }`
 * - `POST /v1/txn` with `{ ops, conditions? }` → `{ succeeded, revision }`
 * - `GET /v1/watch?prefix=P[&prefix=Q…]` (header `Last-Event-ID: R` to resume) → SSE
 * - `GET /v1/identity` → `{ identity }`: the served store's `identity()`, or null without one
 * - `GET /v1/health` → `{ state, clients }`, 200 when the upstream watch is live, else 503
 * - `GET /metrics` → Prometheus text (needs prom-client)
 *
 * Errors are `{ error: { code, message, key? } }` with a 4xx or 5xx status.
 *
 * @example
 * ```ts
 * import { createMemoryStore } from 'rx-datasync'
 * import { serveStore } from 'rx-datasync/http'
 * const server = await serveStore(createMemoryStore(), { port: 8080 })
 * // curl 'http://127.0.0.1:8080/v1/list?prefix='
 * ```
 *
 * @throws TypeError (as a rejection) naming the option when one is wrong; the listen error
 *   (EADDRINUSE …) when the port cannot be used.
 */
export async function serveStore(
  store: KvStore,
  options: HttpServerOptions = {},
): Promise<StoreServer> {
  const settings = resolveServerOptions(options)
  const counters = new Counters()
  const hub = new Hub(store, settings, counters)
  const sockets = new Set<Socket>()
  const sessionOptions: SessionOptions = {
    maxBufferedBytes: settings.maxBufferedBytes,
    snapshotChunk: settings.snapshotChunk,
    counters,
    onEnd: (ended) => {
      hub.detach(ended)
    },
  }

  const handler = (request: IncomingMessage, response: ServerResponse) => {
    answer(request, response)
      .then((answered) => {
        if (answered !== undefined) json(response, answered[0], answered[1])
      })
      .catch((error: unknown) => {
        counters.requestErrors++
        const { status, body } = errorResponse(error)
        if (response.headersSent) {
          response.destroy()
          return
        }
        const text = JSON.stringify({ error: body })
        response.writeHead(status, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
          'cache-control': 'no-store',
          ...(status === 401 ? { 'www-authenticate': 'Bearer' } : {}),
          ...(status === 413 ? { connection: 'close' } : {}),
        })
        response.end(text)
      })
  }

  /** The status and JSON body to answer with, or undefined when the route answered itself. */
  const answer = async (
    request: IncomingMessage,
    response: ServerResponse,
  ): Promise<[number, unknown] | undefined> => {
    if (applyCors(request, response, settings)) return undefined
    const url = new URL(request.url ?? '/', 'http://server')
    const route = `${request.method ?? 'GET'} ${url.pathname}`
    if (route === 'GET /v1/health') {
      const ready = hub.ready
      return [
        ready ? 200 : 503,
        {
          state: hub.failed ? 'failed' : ready ? 'ready' : 'connecting',
          clients: hub.sessions.size,
          revision: hub.revision.toString(),
        },
      ]
    }
    if (route === 'GET /metrics') {
      const text = await prometheusText(metrics()).catch((error: unknown) => {
        throw new HttpError(
          501,
          'capability',
          error instanceof Error ? error.message : String(error),
        )
      })
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
      response.end(text)
      return undefined
    }
    const known = ['/v1/kv', '/v1/list', '/v1/keys', '/v1/txn', '/v1/watch', '/v1/identity']
    if (!known.includes(url.pathname)) {
      throw new HttpError(
        404,
        'not-found',
        `unknown route ${JSON.stringify(url.pathname)}; the routes are ${known.join(', ')}, /v1/health, /metrics`,
      )
    }
    const access = accessOf(request, settings)
    const rest = restOperations(store, access)
    const query = url.searchParams
    switch (route) {
      case 'GET /v1/kv':
        return [200, await rest.get(param(query, 'key'))]
      case 'PUT /v1/kv': {
        const key = param(query, 'key')
        return [200, await rest.put(key, await readJson(request, settings.maxBodyBytes))]
      }
      case 'DELETE /v1/kv':
        return [200, await rest.delete(param(query, 'key'), query.get('prefix') === 'true')]
      case 'GET /v1/list':
        return [200, await rest.list(param(query, 'prefix'))]
      case 'GET /v1/keys':
        return [200, await rest.listKeys(param(query, 'prefix'))]
      case 'GET /v1/identity':
        return [200, await rest.identity()]
      case 'POST /v1/txn':
        return [200, await rest.txn(await readJson(request, settings.maxBodyBytes))]
      case 'GET /v1/watch': {
        const prefixes = query.getAll('prefix')
        if (prefixes.length === 0) {
          throw new HttpError(
            400,
            'invalid-argument',
            "watch: expected at least one 'prefix' query parameter",
          )
        }
        for (const prefix of prefixes) {
          if (
            !settings.prefixes.some(
              (served) => prefix.startsWith(served) || served.startsWith(prefix),
            )
          ) {
            throw new HttpError(
              400,
              'invalid-argument',
              `watch: the prefix ${JSON.stringify(prefix)} is not served (the server serves ${settings.prefixes.map((p) => JSON.stringify(p)).join(', ')})`,
              prefix,
            )
          }
        }
        const lastEventId = request.headers['last-event-id'] ?? query.get('after') ?? undefined
        const after: Revision | undefined =
          lastEventId === undefined || lastEventId === ''
            ? undefined
            : parseRevision(String(lastEventId), 'the Last-Event-ID header')
        if (hub.sessions.size >= settings.maxClients) {
          throw new HttpError(
            503,
            'busy',
            `the server has its maximum of ${settings.maxClients} watch clients`,
          )
        }
        // Not chunked: the stream ends when its connection closes (Node then says `Connection:
        // close`), so each frame goes to the socket as it is (see `Session`).
        response.useChunkedEncodingByDefault = false
        response.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          'x-accel-buffering': 'no',
        })
        response.flushHeaders()
        request.socket.setNoDelay(true)
        hub.attach(new Session(response, prefixes, access, sessionOptions), after)
        return undefined
      }
      default:
        throw new HttpError(
          405,
          'invalid-argument',
          `method ${request.method ?? ''} is not allowed on ${url.pathname}`,
        )
    }
  }

  const metrics = (): HttpServerMetrics => {
    let bufferedBytes = 0
    for (const session of hub.sessions) bufferedBytes += session.buffered
    return {
      clients: hub.sessions.size,
      eventsSent: counters.eventsSent,
      bytesSent: counters.bytesSent,
      resumes: counters.resumes,
      relists: counters.relists,
      slowClientsCut: counters.slowClientsCut,
      requestErrors: counters.requestErrors,
      bufferedBytes,
    }
  }

  const tls = settings.tls
  const server =
    tls === undefined
      ? createHttp(handler)
      : createHttps(
          {
            cert: tls.cert,
            key: tls.key,
            ...(tls.ca === undefined ? {} : { ca: tls.ca }),
            requestCert: tls.requestCert ?? false,
            rejectUnauthorized: tls.requestCert ?? false,
          },
          handler,
        )
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(settings.port, settings.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  hub.start()
  const port = (server.address() as AddressInfo).port
  const host = settings.host.includes(':') ? `[${settings.host}]` : settings.host
  const url = `${tls === undefined ? 'http' : 'https'}://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`
  let closing: Promise<void> | undefined

  return {
    port,
    url,
    status$: store.status$,
    metrics,
    close() {
      closing ??= new Promise<void>((resolve) => {
        hub.stop()
        server.close(() => {
          resolve()
        })
        for (const socket of sockets) socket.destroy()
      })
      return closing
    },
  }
}

function json(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  })
  response.end(text)
}
