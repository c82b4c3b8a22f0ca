/** Retrying an operation through a fault, bounded: no fixed sleeps, the harness's polling. */
import { pollUntil } from '../servers/index.js'

export interface RetryOptions {
  /** Whether an error is worth another attempt (by default every error is); others fail at once. */
  readonly retry?: (error: unknown) => boolean
  /** Give up after this long (ms), failing with the last error. @default 30_000 */
  readonly timeoutMs?: number
  /** What is retried, for the timeout error when no attempt failed. */
  readonly description?: string
}

/**
 * Runs `attempt` until it succeeds, with a short backoff between attempts: for writes and reads
 * while a server fails over, restarts or is cut off.
 */
export async function retried<T>(
  attempt: () => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const retry = options.retry ?? (() => true)
  const timeoutMs = options.timeoutMs ?? 30_000
  let last: unknown
  let outcome: { value: T } | { error: unknown }
  try {
    outcome = await pollUntil(
      async () => {
        try {
          return { value: await attempt() }
        } catch (error) {
          if (!retry(error)) return { error }
          last = error
          return undefined
        }
      },
      { timeoutMs, description: options.description ?? 'an operation to succeed' },
    )
  } catch (timedOut) {
    throw last ?? timedOut
  }
  if ('error' in outcome) throw outcome.error
  return outcome.value
}
