import { readFile } from 'node:fs/promises'
import type { KV } from '@nats-io/kv'
import type { NatsConnection, NodeConnectionOptions } from '@nats-io/transport-node'
import {
  BehaviorSubject,
  Observable,
  Subject,
  defer,
  filter,
  from,
  map,
  switchMap,
  take,
  timeout,
} from 'rxjs'
import { ConfigError, UnavailableError } from '../../core/errors.js'
import type { HealthPart } from '../../internal/store-health.js'
import {
  Kvm,
  StorageType,
  connect,
  credsAuthenticator,
  jetstream,
  jetstreamManager,
  nkeyAuthenticator,
} from './client.js'
import { API, NAME } from './errors.js'
import { consumerFeed, type FeedEvent, type FeedStart } from './feed.js'
import type { Settings } from './options.js'

import type { Handles } from './client.js'

export type { Handles }

/**
 * The store's one connection to NATS, made on first use (P7) and shared by every operation and
 * watch. It reports the connection's health (`disconnect` marks it down, `reconnect` up) and
 * tells watches each time the connection is lost, so that a watch never trusts a consumer across
 * a reconnection: it resumes on a new one from its last revision.
 */
export class NatsLink {
  /** Emits each time the connection is lost (before the client reconnects). */
  readonly disconnects$ = new Subject<void>()
  /** Whether the connection is up now (requests made while it is down would be lost). */
  readonly #up = new BehaviorSubject(false)
  readonly #settings: Settings
  readonly #health: HealthPart
  #handles: Promise<Handles> | undefined
  #closed = false

  readonly #bucket: boolean

  /** `bucket: false` for the bus (a stream, no KV bucket): `kv` is then never used. */
  constructor(settings: Settings, health: HealthPart, bucket = true) {
    this.#settings = settings
    this.#health = health
    this.#bucket = bucket
  }

  /**
   * The handles once the connection is up, connecting first if nothing has yet (cold: on
   * subscribe). While the client is reconnecting it waits: a request the client sends while
   * disconnected is not answered after the reconnection.
   */
  handles(): Observable<Handles> {
    return defer(() => {
      if (this.#closed) throw new UnavailableError(NAME, 'the connection is closed')
      this.#handles ??= this.#open().catch((error: unknown) => {
        this.#handles = undefined
        throw error
      })
      return from(this.#handles)
    }).pipe(
      switchMap((handles) =>
        this.#up.pipe(
          filter(Boolean),
          take(1),
          map(() => handles),
        ),
      ),
    )
  }

  /** {@link handles} within the connect and request timeouts (an operation, a watch's start). */
  ready(): Observable<Handles> {
    const { connectTimeoutMs, requestTimeoutMs, scheduler } = this.#settings
    return this.handles().pipe(timeout({ first: connectTimeoutMs + requestTimeoutMs, scheduler }))
  }

  /**
   * A consumer of the stream in `handles` (see {@link consumerFeed}) with this connection's
   * heartbeat and scheduler, ended when the connection is lost.
   */
  feed(
    handles: Handles,
    filter: string,
    start: FeedStart,
    headersOnly = false,
  ): Observable<FeedEvent> {
    return consumerFeed(handles, {
      filter,
      start,
      headersOnly,
      heartbeatMs: this.#settings.heartbeatMs,
      scheduler: this.#settings.scheduler,
      disconnects: this.disconnects$,
    })
  }

  /** Closes the connection (after it is made, if it is being made). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.disconnects$.complete()
    const handles = this.#handles
    if (handles === undefined) return
    try {
      await (await handles).nc.close()
    } catch {
      // Never connected: nothing to close.
    }
  }

  async #open(): Promise<Handles> {
    const settings = this.#settings
    const nc = await connect(await connectionOptions(settings))
    if (this.#closed) {
      await nc.close()
      throw new UnavailableError(NAME, 'the store closed while connecting')
    }
    this.#health.up()
    this.#up.next(true)
    void this.#follow(nc)
    const js = jetstream(nc, { timeout: settings.requestTimeoutMs })
    const jsm = await jetstreamManager(nc, { timeout: settings.requestTimeoutMs })
    const stream = `KV_${settings.bucket}`
    const kvm = new Kvm(js)
    if (!this.#bucket) {
      return {
        nc,
        js,
        jsm,
        kv: undefined as unknown as KV,
        stream,
        prefix: `$KV.${settings.bucket}.`,
      }
    }
    if (settings.create !== undefined) {
      const exists = await jsm.streams.info(stream).then(
        () => true,
        (error: unknown) => {
          if ((error as { code?: unknown }).code === API.streamNotFound) return false
          throw error
        },
      )
      if (!exists) {
        await kvm.create(settings.bucket, {
          replicas: settings.create.replicas,
          history: settings.create.history,
          storage: settings.create.storage === 'memory' ? StorageType.Memory : StorageType.File,
          maxValueSize: settings.create.maxValueSize,
        })
      }
    }
    const kv = await kvm.open(settings.bucket, { allow_direct: settings.directGets })
    return { nc, js, jsm, kv, stream, prefix: `$KV.${settings.bucket}.` }
  }

  /** Follows the connection's status until it closes. */
  async #follow(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        this.#health.down(
          new UnavailableError(NAME, `lost the connection to ${status.server}; reconnecting`),
        )
        this.#up.next(false)
        this.disconnects$.next()
      } else if (status.type === 'reconnect') {
        this.#up.next(true)
        this.#health.up()
      }
    }
  }
}

/** The client's connection options from the settings (reading the files they name). */
async function connectionOptions(settings: Settings): Promise<NodeConnectionOptions> {
  const tls = settings.tls
  const options: NodeConnectionOptions = {
    servers: [...settings.servers],
    name: settings.name,
    timeout: settings.connectTimeoutMs,
    reconnect: true,
    maxReconnectAttempts: settings.maxReconnectAttempts,
    reconnectTimeWait: settings.reconnectTimeWaitMs,
    reconnectJitter: Math.min(100, settings.reconnectTimeWaitMs),
    pingInterval: settings.pingIntervalMs,
    maxPingOut: 2,
    waitOnFirstConnect: true,
    ignoreClusterUpdates: !settings.discoverServers,
    ...(settings.user !== undefined ? { user: settings.user, pass: settings.password ?? '' } : {}),
    ...(settings.token !== undefined ? { token: settings.token } : {}),
    ...(tls !== undefined
      ? {
          tls: {
            ...(tls.caFile !== undefined ? { caFile: tls.caFile } : {}),
            ...(tls.certFile !== undefined ? { certFile: tls.certFile } : {}),
            ...(tls.keyFile !== undefined ? { keyFile: tls.keyFile } : {}),
            ...(tls.handshakeFirst === true ? { handshakeFirst: true } : {}),
          },
        }
      : {}),
  }
  if (settings.nkeySeed !== undefined) {
    return {
      ...options,
      authenticator: nkeyAuthenticator(new TextEncoder().encode(settings.nkeySeed)),
    }
  }
  if (settings.credsFile !== undefined) {
    let creds: Uint8Array
    try {
      creds = await readFile(settings.credsFile)
    } catch (error) {
      throw new ConfigError(
        `${NAME} store options`,
        'credsFile',
        `cannot read ${settings.credsFile} (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
        { cause: error },
      )
    }
    return { ...options, authenticator: credsAuthenticator(creds) }
  }
  return options
}
