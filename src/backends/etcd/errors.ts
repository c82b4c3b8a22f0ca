import { TimeoutError } from 'rxjs'
import {
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCUnauthenticatedError,
  ClientClosedError,
  isRecoverableError,
} from './etcd3.js'
import {
  AuthError,
  ClosedError,
  ConfigError,
  DatasyncError,
  UnavailableError,
  describe,
} from '../../core/errors.js'
import { inOperation, type ErrorMapper, type Scope } from '../../internal/errors.js'

/** The backend's name in messages. */
export const NAME = 'etcd'

/** Whether etcd refused the client's auth token (it must authenticate again), or caused that. */
export function isStaleToken(error: unknown): boolean {
  return (
    error instanceof EtcdInvalidAuthTokenError ||
    (error instanceof Error && error.cause instanceof EtcdInvalidAuthTokenError)
  )
}

/** How a write over etcd's size limits is told to raise them. */
const RAISE =
  "keep values well under etcd's --max-request-bytes (1.5 MiB by default), or raise it on every member and the store's maxRequestBytes with it"

/**
 * The error of a write too large for etcd: `invalid-argument`, never retried (it would fail
 * the same way every time). `what` names the write (`put "a/b"`); `key` is named too when `what`
 * does not (the largest value of a transaction); `why` gives the size and the limit.
 */
export function tooLarge(what: string, why: string, key?: string, cause?: unknown): DatasyncError {
  const named =
    key === undefined || what.includes(JSON.stringify(key))
      ? ''
      : ` (its largest value is key ${JSON.stringify(key)})`
  return new DatasyncError(
    'invalid-argument',
    `${NAME} ${what}${named}: too large for etcd: ${why}; ${RAISE}`,
    { retryable: false, ...(cause === undefined ? {} : { cause }) },
  )
}

/**
 * Whether etcd or gRPC refused a request for its size: etcd's "request is too large" (over
 * `--max-request-bytes`), or gRPC's "received message larger than max" / "sent message larger
 * than max" (over the server's message limit, `--max-request-bytes` plus 512 KiB, or the
 * client's). etcd3 takes gRPC's RESOURCE_EXHAUSTED for a connection fault and would retry it.
 */
export function isTooLarge(error: unknown): boolean {
  const message = describe(error).toLowerCase()
  return message.includes('request is too large') || message.includes('message larger than max')
}

/** The limit a size rejection names, in words. */
function sizeLimit(message: string): string {
  const grpc = /larger than max \((\d+) vs\. (\d+)\)/i.exec(message)
  if (grpc) {
    return `the request is ${grpc[1]} bytes, over gRPC's message limit of ${grpc[2]} bytes (etcd's --max-request-bytes plus 512 KiB) (${message})`
  }
  return `over etcd's request limit, --max-request-bytes (1572864 bytes unless the members set another) (${message})`
}

/** What the mapper knows about the store, to name things in messages. */
export interface ErrorContext {
  readonly endpoints: readonly string[]
  readonly username: string | undefined
}

interface Rule {
  /** Whether the rule applies to the raw error (its message is given lower-cased too). */
  readonly when: (error: unknown, message: string) => boolean
  readonly map: (
    message: string,
    cause: unknown,
    context: ErrorContext,
    what: string,
  ) => DatasyncError
  readonly scope?: Scope
}

const includes =
  (...needles: string[]) =>
  (_error: unknown, message: string) =>
    needles.some((needle) => message.includes(needle))

const where = (context: ErrorContext) => context.endpoints.join(', ')

/**
 * The one table that turns what etcd3, grpc-js and cockatiel throw into the library's errors:
 * the first rule that matches wins. Authentication and TLS failures close the store (they will
 * not heal by retrying); connection faults are retryable `UnavailableError`s.
 */
const RULES: readonly Rule[] = [
  {
    when: (error, message) =>
      error instanceof EtcdAuthenticationFailedError ||
      message.includes('authentication failed, invalid user id or password'),
    map: (_message, cause, context) =>
      new AuthError(
        NAME,
        `authentication failed for user '${context.username ?? ''}' at ${where(context)}: wrong username or password; check the username and password fields`,
        { cause },
      ),
    scope: 'store',
  },
  {
    when: includes('user name is empty', 'user name not found'),
    map: (message, cause, context) =>
      new AuthError(
        NAME,
        `etcd at ${where(context)} requires authentication (${message}); set username and password`,
        { cause },
      ),
    scope: 'store',
  },
  {
    when: (error) => error instanceof GRPCUnauthenticatedError,
    map: (message, cause, context) =>
      new AuthError(NAME, `etcd at ${where(context)} refused the credentials: ${message}`, {
        cause,
      }),
    scope: 'store',
  },
  {
    when: (error, message) =>
      error instanceof EtcdInvalidAuthTokenError || message.includes('invalid auth token'),
    map: (_message, cause, context, what) =>
      new UnavailableError(
        NAME,
        `${what}: etcd at ${where(context)} no longer knows the auth token (it restarted?); authenticating again`,
        { cause },
      ),
  },
  {
    when: (error, message) =>
      error instanceof EtcdPermissionDeniedError || message.includes('permission denied'),
    map: (_message, cause, context, what) =>
      new AuthError(
        NAME,
        `permission denied for user '${context.username ?? '(none)'}' on ${what}; grant the user a role that covers it`,
        { cause },
      ),
  },
  {
    when: includes(
      'certificate',
      'ssl routines',
      'ssl alert',
      'tls alert',
      'wrong version number',
      'handshake',
      'self-signed',
      'self signed',
    ),
    map: (message, cause, context) =>
      new ConfigError(
        'etcd tls',
        undefined,
        `the TLS handshake with ${where(context)} failed (${message}); check ca-file, cert-file, key-file and the endpoints' scheme, or set insecure-skip-tls-verify`,
        { cause },
      ),
    scope: 'store',
  },
  {
    when: (error) => isTooLarge(error),
    map: (message, cause, _context, what) => tooLarge(what, sizeLimit(message), undefined, cause),
  },
  {
    when: includes('required revision has been compacted'),
    map: (message, cause, _context, what) =>
      new DatasyncError('compacted', `${NAME} ${what}: ${message}`, { cause }),
  },
  {
    when: includes(
      'duplicate key given in txn request',
      'too many operations in txn request',
      'required revision is a future revision',
      'key is not provided',
      'invalid argument',
    ),
    map: (message, cause, _context, what) =>
      new DatasyncError('invalid-argument', `${NAME} ${what}: ${message}`, { cause }),
  },
  {
    when: (error) => error instanceof EtcdLeaseInvalidError,
    map: (message, cause, _context, what) =>
      new DatasyncError('conflict', `${NAME} ${what}: ${message}`, { cause, retryable: true }),
  },
  {
    when: (error) => error instanceof ClientClosedError,
    map: () => new ClosedError(`the ${NAME} store`),
  },
  {
    when: (error) => error instanceof TimeoutError,
    map: (_message, cause, context, what) =>
      new DatasyncError('timeout', `${NAME} ${what}: no answer from ${where(context)} in time`, {
        cause,
      }),
  },
  {
    when: (error, message) =>
      (error instanceof Error && isRecoverableError(error)) ||
      (error as { isBrokenCircuitError?: unknown } | null)?.isBrokenCircuitError === true ||
      message.includes('circuit breaker is open') ||
      message.includes('watch stream was unexpectedly ended') ||
      message.includes('too many requests') ||
      message.includes('no leader') ||
      message.includes('leader changed') ||
      message.includes('request timed out') ||
      message.includes('unavailable') ||
      message.includes('econnrefused') ||
      message.includes('connection'),
    map: (message, cause, context, what) =>
      new UnavailableError(
        NAME,
        `${what} failed: cannot reach etcd at ${where(context)}: ${message}`,
        {
          cause,
        },
      ),
  },
]

/**
 * The store's error table, naming the members and the user of `context`: maps anything the etcd
 * client threw while doing `what` (e.g. `put 'a/b'`) to a {@link DatasyncError}, with its scope.
 * A DatasyncError passes through unchanged (scope `operation`).
 */
export function errorMapper(context: ErrorContext): ErrorMapper {
  return (raw, what) => {
    if (raw instanceof DatasyncError) return inOperation(raw)
    const message = describe(raw)
    const lower = message.toLowerCase()
    for (const rule of RULES) {
      if (rule.when(raw, lower)) {
        return { error: rule.map(message, raw, context, what), scope: rule.scope ?? 'operation' }
      }
    }
    return inOperation(new DatasyncError('internal', `${NAME} ${what}: ${message}`, { cause: raw }))
  }
}
