import { retry, throwError, timer, type MonoTypeOperatorFunction, type SchedulerLike } from 'rxjs'

/** A source of random numbers in [0, 1), like `Math.random` (a fixed sequence in marble specs). */
export type RandomSource = () => number

/** The bounds of an exponential backoff, and its jitter. */
export interface BackoffOptions {
  /** The delay before the first retry, in milliseconds. */
  readonly firstMs: number
  /** No delay is longer than this, in milliseconds. */
  readonly maxMs: number
  /** Each further attempt multiplies the delay by this. @default 2 */
  readonly factor?: number
  /**
   * The share of each delay that is random, from 0 to 1: a delay `d` becomes a value between
   * `d * (1 - jitter)` and `d`, so clients that failed together do not retry together.
   * @default 0 (no jitter)
   */
  readonly jitter?: number
  /** Where the jitter's randomness comes from. @default Math.random */
  readonly random?: RandomSource
}

/** The jitter the library's own retries use (watch restarts, publisher and per-key retries). */
export const DEFAULT_JITTER = 0.2

/**
 * The one backoff formula: `firstMs` before the first retry, multiplied by `factor` (2) with each
 * attempt up to `maxMs`, then shortened by up to `jitter` of itself at random. `attempt` counts
 * from 1; anything lower counts as 1. The result is a whole number of milliseconds, at least 0.
 */
export function backoffDelay(options: BackoffOptions, attempt: number): number {
  const factor = options.factor ?? 2
  const base = Math.min(options.firstMs * factor ** Math.max(0, attempt - 1), options.maxMs)
  const jitter = Math.min(Math.max(options.jitter ?? 0, 0), 1)
  if (jitter === 0) return base
  const random = (options.random ?? Math.random)()
  return Math.max(0, Math.round(base * (1 - jitter * random)))
}

/**
 * Checks backoff options given by a user (`what` names the option group in the message, `names`
 * the user's own name of a field where it differs, e.g. `{ firstMs: 'base', maxMs: 'cap' }`).
 *
 * @throws TypeError naming the field, what was expected and what came.
 */
export function checkBackoff(
  what: string,
  options: BackoffOptions,
  names: { readonly firstMs?: string; readonly maxMs?: string } = {},
): BackoffOptions {
  const check = (field: string, value: number, min: number, unit: string, floor: string) => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
      throw new TypeError(
        `${what}.${field}: expected a number of at least ${min}${unit}${floor}, got ${value}${unit}`,
      )
    }
  }
  const first = names.firstMs ?? 'firstMs'
  const ms = names.firstMs === undefined ? '' : ' ms'
  check(first, options.firstMs, 0, ms, '')
  check(names.maxMs ?? 'maxMs', options.maxMs, options.firstMs, ms, ` (the ${first})`)
  if (options.factor !== undefined) check('factor', options.factor, 1, '', '')
  if (
    options.jitter !== undefined &&
    (typeof options.jitter !== 'number' || !(options.jitter >= 0 && options.jitter <= 1))
  ) {
    throw new TypeError(`${what}.jitter: expected a number from 0 to 1, got ${options.jitter}`)
  }
  return options
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
 * {@link backoffDelay} (with the options' jitter, if any); other errors (and the last one past
 * `count`) pass through.
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
