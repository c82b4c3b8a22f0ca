import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import {
  Observable,
  catchError,
  defer,
  from,
  of,
  retry,
  switchMap,
  throwError,
  timeout,
} from 'rxjs'
import { ClosedError, ConfigError, type DatasyncError } from '../../core/errors.js'
import { Consul } from './consul-package.js'
import { NAME, timeoutError } from './errors.js'
import type { Settings } from './options.js'
import {
  answerOf,
  entryAnswerOf,
  isObject,
  keysOf,
  leaderOf,
  listingOf,
  responseOf,
  sessionIdOf,
  txnAnswerOf,
  type Answer,
  type Listing,
  type RawEntry,
  type TxnAnswer,
  type TxnOperation,
} from './wire.js'

/** Where a blocking query starts waiting, and for how long. */
export interface Blocking {
  readonly index: bigint
  readonly waitMs: number
}

/** The part of the `consul` client this backend calls, as it behaves with `includeResponse`. */
interface ConsulApi {
  readonly kv: {
    get(options: object): Promise<unknown>
    keys(options: object): Promise<unknown>
    del(options: object): Promise<unknown>
  }
  readonly transaction: {
    create(operations: readonly TxnOperation[], options: object): Promise<unknown>
  }
  readonly session: {
    create(options: object): Promise<unknown>
    destroy(options: object): Promise<unknown>
  }
  readonly status: { leader(options: object): Promise<unknown> }
  destroy(): void
}

/** The client of broker calls and status checks, and the client of watches' blocking queries. */
interface Clients {
  readonly calls: ConsulApi
  readonly watches: ConsulApi
}

/** Options papi reads from `ctx`: the emitter aborts the request on `cancel`. */
type Context = EventEmitter & { readonly includeResponse: true }

/**
 * The raw client: every call of the `consul` client goes through {@link ConsulHttp.request}, which
 * makes it a cold Observable (sent on subscribe, aborted on unsubscribe), bounds it with a timeout
 * on the store's scheduler and hands its errors to the store's `fail` (the one place they are
 * mapped). The client (and its keep-alive agents) is created on the first request, after the TLS
 * files are read. The store's `StoreEdge` stands between this class and the store's callers.
 */
export class ConsulHttp {
  private clients: Promise<Clients> | undefined
  /** The clients once created: later requests start synchronously, in subscription order. */
  private ready: Clients | undefined
  private closed = false

  constructor(
    private readonly settings: Settings,
    /**
     * Maps an error a request met while doing `what` (`get 'a/b'`, `watch 'a/'`) to the error the
     * request fails with; the store's edge closes the store when it reaches the whole store (an
     * unknown token, a TLS failure).
     */
    private readonly fail: (raw: unknown, what: string) => DatasyncError,
  ) {}

  /**
   * A recursive listing of `prefix`; with `blocking`, a blocking query from that index. With
   * `consistent` (unless the store reads `stale`) the leader answers only once it is ready for
   * consistent reads: a server that has just restarted answers default reads from its state
   * before it replayed its log (an empty store at index 1), which would look like every key
   * deleted and the index reset.
   */
  list(prefix: string, blocking?: Blocking, consistent = false): Observable<Listing> {
    const timeoutMs =
      blocking === undefined
        ? this.settings.requestTimeoutMs
        : blocking.waitMs + Math.ceil(blocking.waitMs / 16) + this.settings.requestTimeoutMs
    return this.request(
      blocking === undefined ? `list '${prefix}'` : `watch '${prefix}'`,
      timeoutMs,
      blocking === undefined ? 'calls' : 'watches',
      (api, ctx) =>
        api.kv.get({
          ...this.common(ctx),
          ...(consistent && this.settings.consistency !== 'stale' ? { consistent: true } : {}),
          key: prefix,
          recurse: true,
          buffer: true,
          ...(blocking === undefined
            ? {}
            : { index: blocking.index.toString(), wait: `${blocking.waitMs}ms` }),
        }),
      listingOf,
      IDEMPOTENT,
    )
  }

  /** One key, or `undefined`; `index` is the key's ModifyIndex, or the table's when it is missing. */
  get(key: string): Observable<{ readonly index: bigint; readonly entry: RawEntry | undefined }> {
    return this.request(
      `get '${key}'`,
      this.settings.requestTimeoutMs,
      'calls',
      (api, ctx) => api.kv.get({ ...this.common(ctx), key, buffer: true }),
      entryAnswerOf,
      IDEMPOTENT,
    )
  }

  /** The keys under `prefix` (`?keys`), and the listing's index. */
  keys(prefix: string): Observable<{ readonly index: bigint; readonly keys: readonly string[] }> {
    return this.request(
      `listKeys '${prefix}'`,
      this.settings.requestTimeoutMs,
      'calls',
      (api, ctx) =>
        api.kv.keys({ ...this.common(ctx), key: prefix }).catch((error: unknown) => {
          // No key under the prefix: 404, still with the index.
          const response = responseOf(error)
          if (response?.statusCode === 404) return [response, []]
          throw error
        }),
      keysOf,
      IDEMPOTENT,
    )
  }

  /** Deletes every key under `prefix` (`DELETE /v1/kv/<prefix>?recurse`). */
  deleteTree(prefix: string): Observable<void> {
    return this.request(
      `delete prefix '${prefix}'`,
      this.settings.requestTimeoutMs,
      'calls',
      (api, ctx) => api.kv.del({ ...this.writing(ctx), key: prefix, recurse: true }),
      () => undefined,
      IDEMPOTENT,
    )
  }

  /** `PUT /v1/txn`: a rollback (409) is an answer, not an error. */
  txn(operations: readonly TxnOperation[], what = 'txn'): Observable<TxnAnswer> {
    return this.request(
      what,
      this.settings.requestTimeoutMs,
      'calls',
      (api, ctx) =>
        api.transaction.create(operations, this.writing(ctx)).catch((error: unknown) => {
          const response = responseOf(error)
          if (response?.statusCode === 409 && isObject(response.body)) {
            return [response, response.body]
          }
          throw error
        }),
      txnAnswerOf,
    )
  }

  /**
   * A session that deletes the keys it holds when it is invalidated: no sooner than `ttlSeconds`
   * after its creation (it is never renewed here; Consul's servers time it out at twice that). No
   * health checks are attached and the lock delay is 0, so only the TTL (or a destroy) ends it and
   * its keys can be written again at once.
   */
  createSession(ttlSeconds: number): Observable<string> {
    return this.request(
      'create a TTL session',
      this.settings.requestTimeoutMs,
      'calls',
      (api, ctx) =>
        api.session.create({
          ...this.writing(ctx),
          name: 'rx-datasync ttl',
          ttl: `${ttlSeconds}s`,
          behavior: 'delete',
          lockdelay: '0s',
          checks: [],
        }),
      sessionIdOf,
    )
  }

  /** Destroys a session (deleting the keys it still holds). */
  destroySession(id: string): Observable<void> {
    return this.request(
      `destroy session ${id}`,
      this.settings.requestTimeoutMs,
      'calls',
      (api, ctx) => api.session.destroy({ ...this.writing(ctx), id }),
      () => undefined,
      IDEMPOTENT,
    )
  }

  /** The raft leader's address, `''` when the cluster has none (`GET /v1/status/leader`). */
  leader(): Observable<string> {
    return this.request(
      'status check',
      this.settings.requestTimeoutMs,
      'calls',
      (api, ctx) => api.status.leader({ ...this.common(ctx) }),
      leaderOf,
      IDEMPOTENT,
    )
  }

  /** Releases the client's connections; requests made afterwards fail. */
  close(): void {
    this.closed = true
    void this.clients?.then(
      (clients) => {
        clients.calls.destroy()
        clients.watches.destroy()
      },
      () => undefined,
    )
  }

  /**
   * The one wrapper of a client call: cold, aborted on unsubscribe, bounded by `timeoutMs`, and
   * with every error handed to {@link fail}.
   */
  private request<T>(
    what: string,
    timeoutMs: number,
    lane: keyof Clients,
    invoke: (api: ConsulApi, ctx: Context) => Promise<unknown>,
    parse: (answer: Answer) => T,
    idempotent = false,
  ): Observable<T> {
    return defer(() =>
      this.ready !== undefined && !this.closed ? of(this.ready) : from(this.connect()),
    ).pipe(
      switchMap(
        (clients) =>
          new Observable<T>((subscriber) => {
            const api = clients[lane]
            const ctx: Context = Object.assign(new EventEmitter(), {
              includeResponse: true as const,
            })
            let settled = false
            invoke(api, ctx).then(
              (result) => {
                settled = true
                let parsed: T
                try {
                  parsed = parse(answerOf(result))
                } catch (error) {
                  subscriber.error(error)
                  return
                }
                subscriber.next(parsed)
                subscriber.complete()
              },
              (error: unknown) => {
                settled = true
                subscriber.error(error)
              },
            )
            return () => {
              if (!settled) ctx.emit('cancel')
            }
          }),
      ),
      // A kept-alive connection that the agent or the network closed while it was idle fails
      // at its next request (ECONNRESET, EPIPE) with no answer: a request that may run twice
      // goes again once, on a new connection, within the same timeout.
      retry({
        count: idempotent ? 1 : 0,
        delay: (error: unknown) => (isStaleConnection(error) ? of(0) : throwError(() => error)),
      }),
      timeout({
        first: timeoutMs,
        scheduler: this.settings.scheduler,
        with: () => throwError(() => timeoutError(this.settings.address, what, timeoutMs)),
      }),
      catchError((error: unknown) => throwError(() => this.fail(error, what))),
    )
  }

  /** The options of a read: its context, token, datacenter and consistency mode. */
  private common(ctx: Context): object {
    return { ctx, ...this.scope(), ...consistencyOf(this.settings.consistency) }
  }

  /** The options of a write: its context, token and datacenter. */
  private writing(ctx: Context): object {
    return { ctx, ...this.scope() }
  }

  private scope(): object {
    return {
      ...(this.settings.token !== undefined ? { token: this.settings.token } : {}),
      ...(this.settings.datacenter !== undefined ? { dc: this.settings.datacenter } : {}),
    }
  }

  private connect(): Promise<Clients> {
    if (this.closed) return Promise.reject(new ClosedError(`the ${NAME} store`))
    this.clients ??= createClients(this.settings).then((clients) => {
      this.ready = clients
      return clients
    })
    return this.clients
  }
}

/**
 * Two clients on two keep-alive agents: one for the blocking queries of watches (a connection
 * each, as long as the watch lives), one for everything else, with at most
 * `maxConcurrentRequests` connections, so that a burst of writes queues here instead of running
 * into the agent's limit of connections per client (`limits.http_max_conns_per_client`, 200).
 */
async function createClients(settings: Settings): Promise<Clients> {
  const tls = settings.tls
  const read = async (field: string, file: string | undefined): Promise<Buffer | undefined> => {
    if (file === undefined) return undefined
    try {
      return await readFile(file)
    } catch (error) {
      throw new ConfigError(
        `${NAME} tls`,
        field,
        `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
        { cause: error },
      )
    }
  }
  let agent: (maxSockets: number) => http.Agent = (maxSockets) =>
    new http.Agent({ keepAlive: true, maxSockets })
  if (settings.secure) {
    const [ca, cert, key] = await Promise.all([
      read('caFile', tls?.caFile),
      read('certFile', tls?.certFile),
      read('keyFile', tls?.keyFile),
    ])
    agent = (maxSockets) =>
      new https.Agent({
        keepAlive: true,
        maxSockets,
        ...(ca !== undefined ? { ca } : {}),
        ...(cert !== undefined ? { cert } : {}),
        ...(key !== undefined ? { key } : {}),
        servername: tls?.serverName ?? settings.host,
        rejectUnauthorized: tls?.insecureSkipVerify !== true,
      })
  }
  // baseUrl (which keeps a path prefix) is accepted by the client but missing from its types.
  const client = (maxSockets: number): ConsulApi => {
    const options: object = { baseUrl: settings.baseUrl, agent: agent(maxSockets) }
    return new Consul(options) as unknown as ConsulApi
  }
  return { calls: client(settings.maxConcurrentRequests), watches: client(Infinity) }
}

function consistencyOf(mode: Settings['consistency']): object {
  return mode === 'consistent' ? { consistent: true } : mode === 'stale' ? { stale: true } : {}
}

/** A request that may run twice with the same outcome (reads, deletes): see `request`. */
const IDEMPOTENT = true

/** Whether a request failed on a connection that was closed under it, before any answer. */
function isStaleConnection(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code
  return code === 'ECONNRESET' || code === 'EPIPE'
}
