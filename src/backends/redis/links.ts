import type { Redis } from 'ioredis'
import { EMPTY, Subject, concatMap, defer, from, merge, throwError, type Observable } from 'rxjs'
import { isFatalToWatch } from '../../internal/errors.js'
import type { Topology } from './cluster.js'
import { createSessionConnection, type Role } from './connections.js'
import { SessionEnd, type WatchContext } from './context.js'
import { ensureKeyspaceEvents } from './keyspace.js'
import type { HostPort, Settings } from './options.js'
import { serverRunId } from './reads.js'

/** One master's pair of session connections. */
export interface Endpoint {
  readonly name: string
  /** Its position in the session's slot map (0 for a node or Sentinel master). */
  readonly index: number
  /** Subscribes, and answers PINGs after every message published before them. */
  readonly sub: Redis
  /** Reads (SCAN, MGET) from the same server. */
  readonly reader: Redis
}

/** What a session hears on its subscribers. */
export interface Listeners {
  /** A keyspace event on `channel` (a `pmessage`). */
  readonly keyspace: (endpoint: Endpoint, channel: string, event: string) => void
  /** A message on the store's write channel. */
  readonly write: (endpoint: Endpoint, payload: Buffer) => void
}

/**
 * The connections of one watch session: a subscriber and a reader per master. They never
 * reconnect: a closed connection, or an error fatal to the watch, errors {@link failures}, and
 * the next session opens new ones.
 */
export class SessionLinks {
  readonly endpoints: readonly Endpoint[]
  readonly #context: WatchContext
  readonly #connections: Redis[] = []
  readonly #failures = new Subject<never>()
  /** Errors when a connection closes (a gap) or fails for good. */
  readonly failures: Observable<never> = this.#failures.asObservable()

  constructor(context: WatchContext, topology: Topology | undefined) {
    this.#context = context
    const addresses: (HostPort | undefined)[] = topology ? [...topology.masters] : [undefined]
    this.endpoints = addresses.map((address, index) => {
      const name = endpointName(context.settings, address)
      return {
        name,
        index,
        sub: this.#open('watch', address, name),
        reader: this.#open('read', address, name),
      }
    })
  }

  /**
   * Connects, then on every master at once checks the keyspace events and subscribes to the
   * write channel and the key patterns, handing what arrives to `listeners`: when this completes
   * no write goes unseen.
   */
  subscribe(channel: string, patterns: readonly string[], listeners: Listeners): Observable<never> {
    return defer(() => from(Promise.all(this.#connections.map((c) => c.connect())))).pipe(
      concatMap(() =>
        merge(
          ...this.endpoints.map((endpoint) =>
            this.#subscribe(endpoint, channel, patterns, listeners),
          ),
        ),
      ),
    )
  }

  /** PINGs the subscribers of `endpoints`: answered after every message published before it. */
  ping(endpoints: readonly Endpoint[] = this.endpoints): Observable<unknown> {
    return defer(() => from(Promise.all(endpoints.map((endpoint) => endpoint.sub.ping()))))
  }

  /** The endpoint of the master at `index`. */
  endpoint(index: number): Endpoint {
    const endpoint = this.endpoints[index]
    if (endpoint === undefined) throw new RangeError(`no master ${index} in this session`)
    return endpoint
  }

  close(): void {
    for (const connection of this.#connections) connection.disconnect()
  }

  #subscribe(
    endpoint: Endpoint,
    channel: string,
    patterns: readonly string[],
    listeners: Listeners,
  ): Observable<never> {
    const { settings } = this.#context
    return defer(() => {
      endpoint.sub.on('pmessage', (_pattern: string, on: string, event: string) => {
        listeners.keyspace(endpoint, on, event)
      })
      endpoint.sub.on('messageBuffer', (on: Buffer, payload: Buffer) => {
        if (on.toString() === channel) listeners.write(endpoint, payload)
      })
      // All at once (one round trip): each must be done before the listing starts, none
      // depends on another. INFO goes out on the subscriber before SUBSCRIBE, in this order.
      return from(
        Promise.all([
          serverRunId(endpoint.sub),
          serverRunId(endpoint.reader),
          ensureKeyspaceEvents(
            endpoint.reader,
            settings.keyspaceEvents,
            endpoint.name,
            settings.onKeyspaceEventsSet,
          ),
          endpoint.sub.subscribe(channel),
          endpoint.sub.psubscribe(...patterns),
        ]),
      )
    }).pipe(
      concatMap(([a, b]) =>
        // Through Sentinel the two connections resolve the master separately: during a failover
        // they may reach different servers, and a reader elsewhere would answer for keys whose
        // events it never saw.
        a === b
          ? EMPTY
          : throwError(() =>
              SessionEnd.gap(
                'reconnect',
                `the watch connections reached different servers for ${endpoint.name}`,
              ),
            ),
      ),
    )
  }

  #open(role: Role, address: HostPort | undefined, name: string): Redis {
    const { settings, mapError } = this.#context
    const connection = createSessionConnection(settings, role, address)
    this.#connections.push(connection)
    this.#context.track(connection)
    // Most errors also surface as a closed connection or a rejected command; a refused password
    // or bad TLS material ends the watch instead of retrying forever. (ioredis emits such an
    // error before it closes the connection.)
    connection.on('error', (error: unknown) => {
      const mapped = mapError(error, `the ${role} connection to ${name}`)
      if (isFatalToWatch(mapped)) this.#failures.error(mapped.error)
    })
    connection.on('close', () => {
      this.#failures.error(SessionEnd.gap('reconnect', `the ${role} connection to ${name} closed`))
    })
    connection.once('end', () => {
      this.#context.untrack(connection)
    })
    return connection
  }
}

function endpointName(settings: Settings, address: HostPort | undefined): string {
  if (address) return `${address.host}:${address.port}`
  const target = settings.target
  if (target.mode === 'sentinel') return `the master '${target.masterName}'`
  if (target.mode === 'node') return `${target.node.host}:${target.node.port}`
  return 'the cluster'
}
