import {
  AuthError,
  ConfigError,
  DatasyncError,
  UnavailableError,
  describe,
} from '../../core/errors.js'
import { inOperation, type ErrorMapper } from '../../internal/errors.js'

/** The backend's name in messages and errors. */
export const NAME = 'redis'

type Make = (message: string, cause: unknown) => DatasyncError

const unavailable: Make = (message, cause) => new UnavailableError(NAME, message, { cause })
const auth: Make = (message, cause) =>
  new AuthError(NAME, `${message}; check the username and password`, { cause })
const invalid: Make = (message, cause) =>
  new DatasyncError('invalid-argument', `${NAME}: ${message}`, { cause })
const tls: Make = (message, cause) =>
  new ConfigError(NAME, 'tls', `${message}; check the certificate files and skip-verify`, { cause })

/**
 * The error of a write with a key or value over the server's bulk limit: `invalid-argument`,
 * never retried (it would be refused every time), naming the key, its size and the limit, and
 * which limit it is (the store's `maxValueBytes`, or the server's `proto-max-bulk-len` as read).
 */
export function tooLarge(
  what: string,
  key: string,
  bytes: number,
  limit: number,
  which: 'maxValueBytes' | 'proto-max-bulk-len' = 'maxValueBytes',
): DatasyncError {
  const over =
    which === 'maxValueBytes'
      ? `over the store's maxValueBytes of ${limit} bytes; Redis refuses a key or value over its proto-max-bulk-len (512 MiB by default) and drops the connection; keep values under it, or raise it and maxValueBytes together`
      : `over the server's proto-max-bulk-len of ${limit} bytes (read with CONFIG GET), which Redis refuses by dropping the connection; keep values under it, or raise it on the server`
  return new DatasyncError(
    'invalid-argument',
    `${NAME}: ${what} ${JSON.stringify(key)}: ${bytes} bytes is ${over}`,
    {
      retryable: false,
    },
  )
}

const bulkTooLarge: Make = (message, cause) =>
  new DatasyncError(
    'invalid-argument',
    `${NAME}: ${message}: a key or value is over the server's proto-max-bulk-len; set the store's maxValueBytes to it, so such a write is refused before it is sent`,
    { cause, retryable: false },
  )

/** Server reply errors by their first word (the Redis error code). */
const REPLY_CODES: Readonly<Record<string, Make>> = {
  NOAUTH: auth,
  WRONGPASS: auth,
  NOPERM: auth,
  READONLY: unavailable,
  LOADING: unavailable,
  MASTERDOWN: unavailable,
  CLUSTERDOWN: unavailable,
  TRYAGAIN: unavailable,
  MOVED: unavailable,
  ASK: unavailable,
  BUSY: unavailable,
  OOM: unavailable,
  CROSSSLOT: invalid,
  WRONGTYPE: invalid,
}

/** Node socket error codes. */
const SOCKET_CODES: Readonly<Record<string, Make>> = {
  ECONNREFUSED: unavailable,
  ECONNRESET: unavailable,
  ECONNABORTED: unavailable,
  ETIMEDOUT: unavailable,
  EPIPE: unavailable,
  EHOSTUNREACH: unavailable,
  ENETUNREACH: unavailable,
  ENOTFOUND: unavailable,
  EAI_AGAIN: unavailable,
  DEPTH_ZERO_SELF_SIGNED_CERT: tls,
  SELF_SIGNED_CERT_IN_CHAIN: tls,
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: tls,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: tls,
  CERT_HAS_EXPIRED: tls,
  ERR_TLS_CERT_ALTNAME_INVALID: tls,
}

/** ioredis's own errors, by a fragment of their message. */
const CLIENT_MESSAGES: readonly (readonly [string, Make])[] = [
  ['invalid bulk length', bulkTooLarge],
  ['Connection is closed', unavailable],
  ['Command timed out', unavailable],
  ["Stream isn't writeable", unavailable],
  ['All sentinels are unreachable', unavailable],
  ['Failed to refresh slots cache', unavailable],
  ['None of startup nodes is available', unavailable],
  ['Cluster is disconnected', unavailable],
  ['Cluster is disconnecting', unavailable],
  ['Too many Cluster redirections', unavailable],
  ['Command aborted due to connection close', unavailable],
  ['Node is disconnected', unavailable],
  ['No master node is available', unavailable],
  ['max number of clients reached', unavailable],
  ['ERR unknown command', invalid],
]

/**
 * The Redis error table as the kit's one mapper signature: anything a Redis call can throw
 * becomes a {@link DatasyncError}, so `isRetryable` works: lost connections and failovers become
 * `UnavailableError` (retryable), refused credentials `AuthError`, bad TLS material
 * `ConfigError`, refused arguments `invalid-argument`, and everything else `internal`. `what`
 * says what was being done, for the message. Every Redis error stays with the operation (or the
 * watch session) that met it: the broker's connection reconnects by itself, so none closes the
 * store.
 */
export const toDatasyncError: ErrorMapper = (raw, what) => inOperation(mapRaw(raw, what))

/**
 * The mapper of a store whose connection failed with `lastConnectionError()`: a command that
 * ioredis gave up on because it could not connect ("Reached the max retries per request
 * limit") says the server is unreachable, with the connection's own error (`connect
 * ECONNREFUSED 127.0.0.1:6379`), instead of the client's retry internals.
 */
export function storeErrorMapper(lastConnectionError: () => unknown): ErrorMapper {
  return (raw, what) => {
    if (describe(raw).includes('max retries per request')) {
      const last = lastConnectionError()
      return inOperation(
        unavailable(
          `${what}: cannot reach the server${last === undefined ? '' : ` (${describe(last)})`}; the command was not sent`,
          raw,
        ),
      )
    }
    return toDatasyncError(raw, what)
  }
}

function mapRaw(error: unknown, what: string): DatasyncError {
  if (error instanceof DatasyncError) return error
  const message = describe(error)
  const text = `${what}: ${message}`
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string' && SOCKET_CODES[code]) return SOCKET_CODES[code](text, error)
  const word = /^[A-Z]+/.exec(message)?.[0]
  if (word !== undefined && REPLY_CODES[word]) return REPLY_CODES[word](text, error)
  for (const [fragment, make] of CLIENT_MESSAGES) {
    if (message.includes(fragment)) return make(text, error)
  }
  return new DatasyncError('internal', `${NAME}: ${text}`, { cause: error })
}
