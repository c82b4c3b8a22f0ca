import { retry, throwError, timer, type MonoTypeOperatorFunction, type SchedulerLike } from 'rxjs'

/** The bounds of an exponential backoff. */
export interface BackoffOptions {
  /** The delay before the first retry, in milliseconds. */
  readonly firstMs: number
  /** No delay is longer than this, in milliseconds. */
  readonly maxMs: number
}

/**
 * The one backoff formula: `firstMs` before the first retry, doubling with each attempt up to
 * `maxMs`. `attempt` counts from 1; anything lower counts as 1.
 */
export function backoffDelay(options: BackoffOptions, attempt: number): number {
  return Math.min(options.firstMs * 2 ** Math.max(0, attempt - 1), options.maxMs)
}

/** What {@link retryWithBackoff} needs beyond the bounds. */
export interface RetryWithBackoffOptions extends BackoffOptions {
  /** Where the delays are scheduled (virtual time in marble specs). */
  readonly scheduler: SchedulerLike
  /** Whether an error is worth another attempt; the others end the stream at once. */
  readonly shouldRetry: (error: unknown) => boolean
  /** At most this many retries; unbounded when absent. */
  readonly count?: number
  /** Whether a value emitted after a failure starts the count again. @default true */
  readonly resetOnSuccess?: boolean
  /** Called before each delay with the error and the attempt number (from 1). */
  readonly onRetry?: (error: unknown, attempt: number) => void
}

/**
 * Resubscribes to the source after an error `shouldRetry` accepts, after a
 * {@link backoffDelay}; other errors (and the last one past `count`) pass through.
 */
export function retryWithBackoff<T>(options: RetryWithBackoffOptions): MonoTypeOperatorFunction<T> {
  return retry<T>({
    ...(options.count === undefined ? {} : { count: options.count }),
    resetOnSuccess: options.resetOnSuccess ?? true,
    delay: (error: unknown, attempt: number) => {
      if (!options.shouldRetry(error)) return throwError(() => error)
      options.onRetry?.(error, attempt)
      return timer(backoffDelay(options, attempt), options.scheduler)
    },
  })
}
