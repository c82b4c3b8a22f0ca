import { TimeoutError as RxTimeoutError } from 'rxjs'
import {
  AuthError,
  ConfigError,
  DatasyncError,
  UnavailableError,
  describe,
} from '../../core/errors.js'
import { inOperation, type ErrorMapper, type Scope } from '../../internal/errors.js'

/** The backend's name in messages. */
export const NAME = 'nats'

/** JetStream API error codes the store tells apart (`err_code` of an API answer). */
export const API = {
  consumerNotFound: 10014,
  noMessageFound: 10037,
  streamNotFound: 10059,
  wrongLastSequence: 10071,
  jetStreamNotEnabled: 10039,
} as const

/** What a message names: the servers, the bucket, and what was being done. */
interface ErrorContext {
  readonly servers: readonly string[]
  readonly bucket: string
  readonly what: string
}

/** What the mapper reads from a raw error of the NATS client or a socket. */
interface RawFacts {
  /** The class name (`AuthorizationError`, `JetStreamApiError`, ...). */
  readonly name: string
  /** A JetStream API error's `err_code`, else 0. */
  readonly apiCode: number
  /** A JetStream API error's HTTP-like status (503, 404 ...), else 0. */
  readonly status: number
  /** Node's socket `code` (`ECONNREFUSED`), on the error or its cause. */
  readonly code: string
  /** The message, lower-cased. */
  readonly message: string
}

interface Rule {
  readonly when: (facts: RawFacts) => boolean
  readonly map: (facts: RawFacts, cause: unknown, context: ErrorContext) => DatasyncError
  readonly scope?: Scope
}

const where = (context: ErrorContext) => context.servers.join(', ')

const TLS = /certificate|ssl routines|wrong version number|tls|self.signed|unable to verify/

/**
 * The one table that turns what the NATS client (nats-core, jetstream) and Node's sockets throw
 * into the library's errors; the first rule that matches wins. A refused login and a TLS failure
 * close the store (they do not heal by retrying); a missing bucket fails the operation with a
 * `ConfigError` (a watch stops); a write whose expected sequence no longer holds is a `conflict`;
 * connection faults, timeouts, "no responders" (JetStream electing a leader) and 503 answers are
 * retryable `UnavailableError`s.
 */
const RULES: readonly Rule[] = [
  {
    when: (f) =>
      f.name === 'AuthorizationError' ||
      f.name === 'UserAuthenticationExpiredError' ||
      f.message.includes('authorization violation') ||
      f.message.includes('authentication expired'),
    map: (f, cause, context) =>
      new AuthError(
        NAME,
        `the server at ${where(context)} refused the credentials while doing ${context.what} (${f.message}); check user/password, token, nkey or creds-file`,
        { cause },
      ),
    scope: 'store',
  },
  {
    when: (f) =>
      f.name === 'PermissionViolationError' || f.message.includes('permissions violation'),
    map: (f, cause, context) =>
      new AuthError(
        NAME,
        `${context.what}: the user may not do this on bucket '${context.bucket}' (${f.message}); grant publish and subscribe on $KV.${context.bucket}.> and $JS.API.>`,
        { cause },
      ),
  },
  {
    when: (f) => f.apiCode === API.streamNotFound,
    map: (_f, cause, context) =>
      new ConfigError(
        `${NAME} store options`,
        'bucket',
        `the KV bucket '${context.bucket}' does not exist at ${where(context)} (${context.what}); create it (nats kv add ${context.bucket}) or set create: true`,
        { cause },
      ),
  },
  {
    when: (f) => f.apiCode === API.jetStreamNotEnabled || f.name === 'JetStreamNotEnabled',
    map: (_f, cause, context) =>
      new ConfigError(
        `${NAME} store options`,
        'servers',
        `JetStream is not enabled for this account at ${where(context)}; run nats-server with -js (or a jetstream block)`,
        { cause },
      ),
  },
  {
    when: (f) => f.apiCode === API.wrongLastSequence || f.message.includes('wrong last sequence'),
    map: (f, cause, context) =>
      new DatasyncError(
        'conflict',
        `${NAME}: ${context.what}: the key changed since it was read (${f.message})`,
        { cause },
      ),
  },
  {
    when: (f) => TLS.test(f.message) || f.code.startsWith('ERR_TLS') || f.code.startsWith('CERT_'),
    map: (f, cause, context) =>
      new ConfigError(
        `${NAME} tls`,
        undefined,
        `the TLS connection to ${where(context)} failed (${f.code || f.message}); check tls ca-file, cert-file and key-file, and that the server has TLS`,
        { cause },
      ),
    scope: 'store',
  },
  {
    when: (f) =>
      f.name === 'TimeoutError' ||
      f.name === 'NoResponders' ||
      f.name === 'ConnectionError' ||
      f.name === 'ClosedConnectionError' ||
      f.name === 'DrainingConnectionError' ||
      f.name === 'RequestError' ||
      f.status === 503 ||
      f.status === 408 ||
      f.code.startsWith('E') ||
      f.message.includes('jetstream system temporarily unavailable') ||
      f.message.includes('no suitable peers') ||
      f.message.includes('timeout'),
    map: (f, cause, context) =>
      new UnavailableError(
        NAME,
        `${context.what}: no usable answer from ${where(context)} (${f.code || f.message})`,
        { cause },
      ),
  },
]

function factsOf(error: unknown): RawFacts {
  const raw = (typeof error === 'object' && error !== null ? error : {}) as {
    name?: unknown
    code?: unknown
    status?: unknown
    cause?: { code?: unknown; name?: unknown }
  }
  const name = typeof raw.name === 'string' ? raw.name : ''
  const apiCode = name.includes('JetStreamApi') || name.endsWith('NotFoundError') ? raw.code : 0
  const socketCode =
    typeof raw.code === 'string'
      ? raw.code
      : typeof raw.cause?.code === 'string'
        ? raw.cause.code
        : ''
  return {
    name: name === 'RequestError' && typeof raw.cause?.name === 'string' ? raw.cause.name : name,
    apiCode: typeof apiCode === 'number' ? apiCode : 0,
    status: typeof raw.status === 'number' ? raw.status : 0,
    code: socketCode,
    message: describe(error).toLowerCase(),
  }
}

/**
 * The store's error table, naming the servers and the bucket: maps anything the NATS client (or
 * a socket, or an RxJS timeout) threw while doing `what` to a {@link DatasyncError}, with its
 * scope. A `DatasyncError` passes through unchanged (scope `operation`).
 */
export function errorMapper(servers: readonly string[], bucket: string): ErrorMapper {
  return (raw, what) => {
    if (raw instanceof DatasyncError) return inOperation(raw)
    const context = { servers, bucket, what }
    if (raw instanceof RxTimeoutError) {
      return inOperation(
        new DatasyncError('timeout', `${NAME}: ${what}: no answer from ${where(context)} in time`, {
          cause: raw,
        }),
      )
    }
    const facts = factsOf(raw)
    for (const rule of RULES) {
      if (rule.when(facts)) {
        return { error: rule.map(facts, raw, context), scope: rule.scope ?? 'operation' }
      }
    }
    return inOperation(
      new DatasyncError(
        'internal',
        `${NAME}: ${what} at ${where(context)} failed: ${describe(raw)}`,
        {
          cause: raw,
        },
      ),
    )
  }
}
