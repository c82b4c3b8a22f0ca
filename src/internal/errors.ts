import { DatasyncError } from '../core/errors.js'

/** How far a failure reaches beyond the one operation (or watch) that met it. */
export type Scope =
  /** Only this operation (or this watch attempt) failed. */
  | 'operation'
  /** The store cannot work at all (a wrong password, a TLS mismatch): it closes with the error. */
  | 'store'

/** A raw client error mapped to the library's error, with how far it reaches. */
export interface Mapped {
  readonly error: DatasyncError
  readonly scope: Scope
}

/**
 * The one signature of a backend's error table: a raw error met while doing `what` (`get 'a/b'`,
 * `watch 'a/'`, `txn`) becomes a {@link Mapped}. What a backend knows about itself (endpoints,
 * the user) is bound when the store builds its mapper.
 */
export type ErrorMapper = (raw: unknown, what: string) => Mapped

/** An error that stays with the one operation that met it. */
export function inOperation(error: DatasyncError): Mapped {
  return { error, scope: 'operation' }
}

/** An error that closes the store. */
export function forStore(error: DatasyncError): Mapped {
  return { error, scope: 'store' }
}

/**
 * The one rule for a watch: it stops retrying when an error reaches the whole store, or when the
 * error is not worth retrying (`auth`, `config`, `capability`, `invalid-argument` …); anything
 * retryable (`unavailable`, `timeout`, `conflict`) is retried with backoff and reported on the
 * store's status.
 */
export function isFatalToWatch(mapped: Mapped): boolean {
  return mapped.scope === 'store' || !mapped.error.retryable
}

/**
 * Whether an error says something about the connection (and so about the store's health), as
 * opposed to a refused write, a conflict or a bad argument.
 */
export function isConnectionFault(error: unknown): error is DatasyncError {
  return (
    error instanceof DatasyncError && (error.code === 'unavailable' || error.code === 'timeout')
  )
}

/** `error` when it is a {@link DatasyncError}, else an `internal` one wrapping it. */
export function asDatasyncError(error: unknown): DatasyncError {
  if (error instanceof DatasyncError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new DatasyncError('internal', message, { cause: error })
}
