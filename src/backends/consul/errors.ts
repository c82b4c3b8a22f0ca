import {
  AuthError,
  ConfigError,
  DatasyncError,
  UnavailableError,
  describe,
} from '../../core/errors.js'
import { inOperation, type ErrorMapper, type Scope } from '../../internal/errors.js'

/** The backend's name in messages. */
export const NAME = 'consul'

/** What a message names: the agent, and what was being done (`get 'a/b'`, `watch 'a/'`, `txn`). */
interface ErrorContext {
  /** The agent's address as configured. */
  readonly address: string
  readonly what: string
}

/** What the mapper reads from a raw error: papi's `ResponseError`, Node's socket errors. */
interface RawFacts {
  readonly status: number | undefined
  /** The response body when it is text (Consul answers errors in text/plain). */
  readonly body: string
  /** Node's `code` (`ECONNREFUSED`) or papi's markers. */
  readonly code: string
  /** The message, lower-cased. */
  readonly message: string
}

interface Rule {
  readonly when: (facts: RawFacts) => boolean
  readonly map: (facts: RawFacts, cause: unknown, context: ErrorContext) => DatasyncError
  readonly scope?: Scope
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
])

const TLS_CODES = [
  'CERT_',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_',
  'ERR_TLS_',
  'ERR_SSL_',
  'EPROTO',
]

const text = (facts: RawFacts) => facts.body || facts.message

/**
 * The one table that turns what the consul client (papi) and Node's sockets throw into the
 * library's errors; the first rule that matches wins. An unknown ACL token and TLS failures close
 * the store (they do not heal by retrying); a token that lacks a permission fails the operation;
 * connection faults, timeouts, "No cluster leader" and other 5xx answers are retryable
 * `UnavailableError`s.
 */
const RULES: readonly Rule[] = [
  {
    when: (f) => f.status === 403 && /acl not found/i.test(text(f)),
    map: (_f, cause, context) =>
      new AuthError(
        NAME,
        `the agent at ${context.address} does not know the ACL token (403 ACL not found) while doing ${context.what}; check the token option, the token field of the configuration file or CONSUL_HTTP_TOKEN`,
        { cause },
      ),
    scope: 'store',
  },
  {
    when: (f) => f.status === 403 || f.status === 401,
    map: (f, cause, context) =>
      new AuthError(
        NAME,
        `the ACL token may not do ${context.what} at ${context.address} (${f.status} ${text(f).trim() || 'Permission denied'}); grant the token a policy that covers it`,
        { cause },
      ),
  },
  {
    when: (f) => f.status === 413,
    map: (f, cause, context) =>
      new DatasyncError(
        'invalid-argument',
        `${NAME}: ${context.what}: the agent refused the request as too large (${text(f).trim()}); Consul limits a value to kv_max_value_size (512 KiB by default) and a transaction to txn_max_req_len and its operation count`,
        { cause },
      ),
  },
  {
    when: (f) => f.status === 400,
    map: (f, cause, context) =>
      new DatasyncError(
        'invalid-argument',
        `${NAME}: ${context.what}: the agent refused the request (400 ${text(f).trim()})`,
        { cause },
      ),
  },
  {
    when: (f) => f.status === 429,
    map: (_f, cause, context) =>
      new UnavailableError(
        NAME,
        `${context.what}: the agent at ${context.address} is rate limiting requests (429); retrying later`,
        { cause },
      ),
  },
  {
    when: (f) => f.status !== undefined && f.status >= 500,
    map: (f, cause, context) =>
      new UnavailableError(
        NAME,
        `${context.what}: the agent at ${context.address} failed (${f.status} ${text(f).trim()})`,
        { cause },
      ),
  },
  {
    when: (f) =>
      CONNECTION_CODES.has(f.code) ||
      f.code === 'TIMEOUT' ||
      f.message.includes('socket hang up') ||
      f.message.includes('request timed out'),
    map: (f, cause, context) =>
      new UnavailableError(
        NAME,
        `${context.what}: cannot reach the agent at ${context.address} (${f.code || f.message})`,
        { cause },
      ),
  },
  {
    when: (f) =>
      TLS_CODES.some((prefix) => f.code.startsWith(prefix)) ||
      /certificate|ssl routines|wrong version number/.test(f.message),
    map: (f, cause, context) =>
      new ConfigError(
        `${NAME} tls`,
        undefined,
        `the TLS connection to ${context.address} failed (${f.code || f.message}); check the address's scheme and the tls ca-file, cert-file, key-file and server-name`,
        { cause },
      ),
    scope: 'store',
  },
]

function factsOf(error: unknown): RawFacts {
  const raw = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown
    isTimeout?: unknown
    response?: { statusCode?: unknown; body?: unknown }
    cause?: { code?: unknown }
  }
  const status = typeof raw.response?.statusCode === 'number' ? raw.response.statusCode : undefined
  const body = typeof raw.response?.body === 'string' ? raw.response.body : ''
  const code =
    typeof raw.code === 'string'
      ? raw.code
      : typeof raw.cause?.code === 'string'
        ? raw.cause.code
        : raw.isTimeout === true
          ? 'TIMEOUT'
          : ''
  return { status, body, code, message: describe(error).toLowerCase() }
}

/**
 * The store's error table, naming the agent at `address`: maps anything the consul client (or a
 * socket) threw while doing `what` to a {@link DatasyncError}, with its scope. A `DatasyncError`
 * passes through unchanged (scope `operation`).
 */
export function errorMapper(address: string): ErrorMapper {
  return (raw, what) => {
    if (raw instanceof DatasyncError) return inOperation(raw)
    const facts = factsOf(raw)
    const context = { address, what }
    for (const rule of RULES) {
      if (rule.when(facts)) {
        return { error: rule.map(facts, raw, context), scope: rule.scope ?? 'operation' }
      }
    }
    return inOperation(
      new DatasyncError('internal', `${NAME}: ${what} at ${address} failed: ${describe(raw)}`, {
        cause: raw,
      }),
    )
  }
}

/** A request to the agent at `address` that got no answer within `ms` while doing `what`. */
export function timeoutError(address: string, what: string, ms: number): DatasyncError {
  return new DatasyncError(
    'timeout',
    `${NAME}: ${what}: no answer from the agent at ${address} within ${ms} ms`,
  )
}
