/**
 * What went wrong, as a string union so it can be switched on:
 * - `unavailable`: the backend cannot be reached (retryable).
 * - `timeout`: a request took longer than its deadline (retryable).
 * - `compacted`: the history a watch needed is gone; the backend relists.
 * - `ack-timeout`: a consumer did not acknowledge an event in time.
 * - `consumer-failed`: a consumer acknowledged with an error.
 * - `codec`: a value could not be encoded or decoded.
 * - `capability`: the backend cannot do the operation asked for.
 * - `config`: a configuration is wrong (fatal).
 * - `auth`: authentication or authorization failed (fatal).
 * - `conflict`: a write was refused by the backend's concurrency control (retryable).
 * - `closed`: the store or orchestrator was closed.
 * - `invalid-argument`: a call was made with a value the backend refuses.
 * - `internal`: anything else.
 */
export type ErrorCode =
  | 'unavailable'
  | 'timeout'
  | 'compacted'
  | 'ack-timeout'
  | 'consumer-failed'
  | 'codec'
  | 'capability'
  | 'config'
  | 'auth'
  | 'conflict'
  | 'closed'
  | 'invalid-argument'
  | 'internal'

const RETRYABLE: ReadonlySet<ErrorCode> = new Set(['unavailable', 'timeout', 'conflict'])

/** Options shared by every {@link DatasyncError}. */
export interface DatasyncErrorOptions {
  /** The underlying error, kept for logs. */
  readonly cause?: unknown
  /** Overrides the code's default retryability. */
  readonly retryable?: boolean
}

/**
 * The base of every error rx-datasync reports. `code` says the category; subclasses add the
 * structured fields a handler needs (the key, the consumer, the backend).
 */
export class DatasyncError extends Error {
  override readonly name: string = 'DatasyncError'
  readonly code: ErrorCode
  readonly retryable: boolean

  constructor(code: ErrorCode, message: string, options: DatasyncErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.retryable = options.retryable ?? RETRYABLE.has(code)
  }
}

/** The backend cannot be reached, or a request to it failed in a way worth retrying. */
export class UnavailableError extends DatasyncError {
  override readonly name = 'UnavailableError'
  constructor(
    readonly backend: string,
    message: string,
    options: DatasyncErrorOptions = {},
  ) {
    super('unavailable', `${backend}: ${message}`, options)
  }
}

/** A consumer did not call `done()` within the ack timeout. */
export class AckTimeoutError extends DatasyncError {
  override readonly name = 'AckTimeoutError'
  constructor(
    readonly consumer: string,
    readonly eventKind: 'resync' | 'change',
    readonly timeoutMs: number,
  ) {
    super(
      'ack-timeout',
      `consumer '${consumer}' did not acknowledge its ${eventKind} event within ${timeoutMs} ms; call event.done() when the event is applied (if its events$ handler threw, RxJS reported the throw as unhandled and the event was never acknowledged: handle events with handleEvents(), which acknowledges a throw as done(error))`,
    )
  }
}

/** A consumer called `done(error)`. */
export class ConsumerError extends DatasyncError {
  override readonly name = 'ConsumerError'
  constructor(
    readonly consumer: string,
    readonly eventKind: 'resync' | 'change',
    cause: unknown,
  ) {
    super(
      'consumer-failed',
      `consumer '${consumer}' failed to apply its ${eventKind} event: ${describe(cause)}`,
      { cause },
    )
  }
}

/** A value could not be decoded (or encoded); names the key, and the consumer where there is one. */
export class CodecError extends DatasyncError {
  override readonly name = 'CodecError'
  constructor(
    readonly key: string,
    readonly codec: string,
    cause: unknown,
    readonly consumer?: string,
    /** The store the value came from (its `name`: `memory`, `etcd`, ...), where known. */
    readonly store?: string,
  ) {
    super(
      'codec',
      `key '${key}'${store === undefined ? '' : ` in the ${store} store`}: the ${codec} codec failed${consumer === undefined ? '' : ` for consumer '${consumer}'`}: ${describe(cause)}`,
      { cause },
    )
  }
}

/** The backend cannot do what was asked (a write to FileDB, a TTL where there are no leases). */
export class CapabilityError extends DatasyncError {
  override readonly name = 'CapabilityError'
  constructor(
    readonly backend: string,
    readonly capability: string,
    detail?: string,
  ) {
    super(
      'capability',
      `the ${backend} store does not support ${capability}${detail === undefined ? '' : `: ${detail}`}`,
    )
  }
}

/** A configuration is wrong; names the source (file and line, or option) and the field. */
export class ConfigError extends DatasyncError {
  override readonly name = 'ConfigError'
  constructor(
    readonly source: string,
    readonly field: string | undefined,
    message: string,
    options: DatasyncErrorOptions = {},
  ) {
    super(
      'config',
      `${source}${field === undefined ? '' : `: field '${field}'`}: ${message}`,
      options,
    )
  }
}

/** Authentication or authorization failed; fatal, never retried. */
export class AuthError extends DatasyncError {
  override readonly name = 'AuthError'
  constructor(
    readonly backend: string,
    message: string,
    options: DatasyncErrorOptions = {},
  ) {
    super('auth', `${backend}: ${message}`, options)
  }
}

/** The store or orchestrator was closed before or during the operation. */
export class ClosedError extends DatasyncError {
  override readonly name = 'ClosedError'
  constructor(readonly what: string) {
    super('closed', `${what} is closed`)
  }
}

/**
 * Whether an operation that failed with `error` is worth retrying: true for {@link DatasyncError}s
 * marked retryable (unavailable, timeout, conflict), false for everything else.
 */
export function isRetryable(error: unknown): boolean {
  return error instanceof DatasyncError && error.retryable
}

/** A one-line description of any thrown value, for messages. */
export function describe(error: unknown): string {
  if (error instanceof Error) return error.message
  if (typeof error === 'string') return error
  try {
    return JSON.stringify(error) ?? String(error)
  } catch {
    return String(error)
  }
}
