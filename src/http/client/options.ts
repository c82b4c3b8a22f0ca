import { asyncScheduler, type SchedulerLike } from 'rxjs'
import { toMillis, type Duration } from '../../core/duration.js'
import type { Capabilities } from '../../core/store.js'
import { argumentChecks, type ArgumentChecks } from '../../internal/checks.js'

/** The backend's name in messages. */
export const NAME = 'http'

/** The client's argument checks: its messages name the http store. */
export const check: ArgumentChecks = argumentChecks({ backend: NAME, bytesOnly: true })

/** What the client reads of a fetch `Response` (the global one, undici's, a polyfill's). */
export interface FetchResponse {
  readonly ok: boolean
  readonly status: number
  readonly statusText: string
  /** The streamed body (a web `ReadableStream` of bytes). */
  readonly body: { getReader(): FetchBodyReader } | null
  text(): Promise<string>
  json(): Promise<unknown>
}

/** What the client reads of a body's reader: chunks of bytes until `done`. */
export interface FetchBodyReader {
  read(): Promise<{ readonly done: boolean; readonly value?: unknown }>
}

/** The `fetch` the client calls: the global one, or one of your own (a proxy, a private CA). */
export type FetchLike = (input: string, init: RequestInit) => Promise<FetchResponse>

/** Options of {@link createHttpStore}. */
export interface HttpStoreOptions {
  /** A bearer token, sent as `Authorization: Bearer <token>` on every request. */
  readonly token?: string
  /** Extra headers on every request. */
  readonly headers?: Readonly<Record<string, string>>
  /**
   * The fetch to use. In Node, for a server whose certificate a private CA signed, pass one
   * with an undici dispatcher (`(url, init) => fetch(url, { ...init, dispatcher })`), or start
   * Node with `NODE_EXTRA_CA_CERTS`. @default globalThis.fetch
   */
  readonly fetch?: FetchLike
  /** How long a REST request may take before it fails with `timeout`. @default '10s' */
  readonly requestTimeout?: Duration
  /** The longest pause between reconnection attempts of a watch (it starts at 100 ms). @default '5s' */
  readonly reconnectInterval?: Duration
  /**
   * A watch stream with no data (not even the server's heartbeat) for this long is taken for
   * dead and reconnected. Keep it above the server's `heartbeat` (15 s by default). @default '45s'
   */
  readonly idleTimeout?: Duration
  /**
   * What the served store can do, where it differs from the default (every capability: the
   * server gives `prev` and resumes from its log whatever it serves). Set `write: false` for a
   * served FileDB.
   */
  readonly capabilities?: Partial<Capabilities>
  /** Where timeouts and reconnection delays run. @default asyncScheduler */
  readonly scheduler?: SchedulerLike
}

/** The options, checked and resolved. */
export interface ClientSettings {
  /** The base URL without a trailing slash. */
  readonly base: string
  readonly headers: Readonly<Record<string, string>>
  readonly fetch: FetchLike
  readonly requestTimeoutMs: number
  readonly reconnectMs: number
  readonly idleMs: number
  readonly capabilities: Capabilities
  readonly scheduler: SchedulerLike
}

const DEFAULT_CAPABILITIES: Capabilities = {
  write: true,
  txn: true,
  ttl: true,
  nativePrev: true,
  resumable: true,
  atomicPrefixDelete: true,
}

/**
 * Checks the URL and options and fills in the defaults.
 *
 * @throws TypeError naming the URL or the option when one is wrong.
 */
export function resolveClientOptions(url: string, options: HttpStoreOptions): ClientSettings {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new TypeError(`createHttpStore: expected an http(s):// URL, got ${JSON.stringify(url)}`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TypeError(`createHttpStore: expected an http(s):// URL, got ${JSON.stringify(url)}`)
  }
  if (parsed.search !== '' || parsed.hash !== '') {
    throw new TypeError(
      `createHttpStore: the URL ${JSON.stringify(url)} must have no query or fragment`,
    )
  }
  if (options.token !== undefined && (options.token === '' || /\s/.test(options.token))) {
    throw new TypeError('createHttpStore: token: expected a non-empty string without spaces')
  }
  const fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis)
  return {
    base: parsed.href.replace(/\/+$/, ''),
    headers: {
      ...options.headers,
      ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
    },
    fetch: fetchFn,
    requestTimeoutMs: toMillis(options.requestTimeout ?? '10s', 'requestTimeout'),
    reconnectMs: toMillis(options.reconnectInterval ?? '5s', 'reconnectInterval'),
    idleMs: toMillis(options.idleTimeout ?? '45s', 'idleTimeout'),
    capabilities: Object.freeze({ ...DEFAULT_CAPABILITIES, ...options.capabilities }),
    scheduler: options.scheduler ?? asyncScheduler,
  }
}
