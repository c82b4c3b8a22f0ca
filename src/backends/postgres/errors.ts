import { TimeoutError } from 'rxjs'
import {
  AuthError,
  ClosedError,
  ConfigError,
  DatasyncError,
  UnavailableError,
  describe,
} from '../../core/errors.js'
import { forStore, inOperation, type ErrorMapper } from '../../internal/errors.js'

/** The backend's name in messages. */
export const NAME = 'postgres'

/** The SQLSTATE of a `pg` DatabaseError, or the errno code of a socket error. */
function codeOf(raw: unknown): string | undefined {
  const code = (raw as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

const CONNECTION_MESSAGES = [
  'connection terminated',
  'connection timeout',
  'timeout expired',
  'not queryable',
  'econnrefused',
  'econnreset',
  'epipe',
  'ehostunreach',
  'socket hang up',
  'the database system is',
  'terminating connection',
]

const TLS_MESSAGES = [
  'does not support ssl',
  'certificate',
  'self-signed',
  'self signed',
  'ssl routines',
  'wrong version number',
  'handshake',
]

/**
 * The store's error table: maps what `pg` throws while doing `what` to a {@link DatasyncError},
 * naming the server (`where`) and the user. A wrong password, a missing database and a TLS
 * mismatch close the store (they do not heal by retrying); lost connections, a server that is
 * starting or shutting down and too many connections are retryable `unavailable`; a statement
 * timeout is `timeout`; a serialization failure or deadlock is a retryable `conflict`.
 */
export function errorMapper(where: string, user: string): ErrorMapper {
  return (raw, what) => {
    if (raw instanceof DatasyncError) return inOperation(raw)
    const message = describe(raw)
    const lower = message.toLowerCase()
    const code = codeOf(raw) ?? ''
    if (raw instanceof TimeoutError) {
      return inOperation(
        new DatasyncError('timeout', `${NAME} ${what}: no answer from ${where} in time`, {
          cause: raw,
        }),
      )
    }
    if (code === '28P01' || code === '28000') {
      return forStore(
        new AuthError(
          NAME,
          `${where} refused user '${user}' (${message}); check the user and password (or password-file)`,
          { cause: raw },
        ),
      )
    }
    if (code === '3D000') {
      return forStore(
        new ConfigError(`${NAME} ${where}`, 'database', `${message}; create it or fix the name`, {
          cause: raw,
        }),
      )
    }
    if (code === '42501') {
      return inOperation(
        new AuthError(NAME, `${what}: permission denied for user '${user}' (${message})`, {
          cause: raw,
        }),
      )
    }
    if (code === '57014') {
      return inOperation(
        new DatasyncError(
          'timeout',
          `${NAME} ${what}: the statement timeout ran out at ${where} (${message})`,
          { cause: raw },
        ),
      )
    }
    if (code === '40001' || code === '40P01' || code === '55P03') {
      return inOperation(
        new DatasyncError('conflict', `${NAME} ${what}: ${message}`, {
          cause: raw,
          retryable: true,
        }),
      )
    }
    if (code.startsWith('22') || code === '54000') {
      return inOperation(
        new DatasyncError('invalid-argument', `${NAME} ${what}: ${message}`, { cause: raw }),
      )
    }
    if (lower.includes('pool after calling end') || lower.includes('client was closed')) {
      return inOperation(new ClosedError(`the ${NAME} store`))
    }
    if (TLS_MESSAGES.some((needle) => lower.includes(needle))) {
      return forStore(
        new ConfigError(
          `${NAME} tls`,
          undefined,
          `the TLS handshake with ${where} failed (${message}); check tls (ca, cert, key) or sslmode in the URL`,
          { cause: raw },
        ),
      )
    }
    if (
      code.startsWith('08') ||
      code.startsWith('57P') ||
      code.startsWith('53') ||
      code === 'ECONNREFUSED' ||
      code === 'ECONNRESET' ||
      code === 'EPIPE' ||
      code === 'ETIMEDOUT' ||
      CONNECTION_MESSAGES.some((needle) => lower.includes(needle))
    ) {
      return inOperation(
        new UnavailableError(NAME, `${what} failed: cannot reach ${where}: ${message}`, {
          cause: raw,
        }),
      )
    }
    return inOperation(new DatasyncError('internal', `${NAME} ${what}: ${message}`, { cause: raw }))
  }
}
