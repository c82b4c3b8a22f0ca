/**
 * Bounded polling: the harness never sleeps a fixed time waiting for an event; it polls a probe
 * with a short backoff until it holds or a deadline passes.
 */
import { setTimeout as sleep } from 'node:timers/promises'

export interface PollOptions {
  /** Give up after this long (ms). Default 30 000. */
  timeoutMs?: number
  /** First pause between attempts (ms); it doubles up to `maxIntervalMs`. Default 20. */
  intervalMs?: number
  /** Longest pause between attempts (ms). Default 250. */
  maxIntervalMs?: number
  /** Each attempt gets a signal that aborts after this long (ms). Default 2 000. */
  attemptTimeoutMs?: number
  /** What is awaited, for the timeout error. */
  description?: string
  /** Stops polling early: the poll rejects with the signal's reason. */
  signal?: AbortSignal
}

/**
 * Calls `probe` until it returns a value other than `undefined`/`false`, and returns that value.
 * A probe that throws counts as "not yet"; its last error is in the timeout error's cause.
 */
export async function pollUntil<T>(
  probe: (signal: AbortSignal) => Promise<T | undefined | false> | T | undefined | false,
  options: PollOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000
  const maxIntervalMs = options.maxIntervalMs ?? 250
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 2_000
  const deadline = performance.now() + timeoutMs
  let interval = options.intervalMs ?? 20
  let lastError: unknown
  let attempts = 0
  for (;;) {
    options.signal?.throwIfAborted()
    attempts++
    const attemptSignal = AbortSignal.timeout(
      // Whole milliseconds: AbortSignal.timeout refuses fractions (the remaining time has them).
      Math.max(1, Math.ceil(Math.min(attemptTimeoutMs, deadline - performance.now()))),
    )
    const signal = options.signal ? AbortSignal.any([options.signal, attemptSignal]) : attemptSignal
    try {
      const result = await probe(signal)
      if (result !== undefined && result !== false) return result
    } catch (err) {
      lastError = err
    }
    const remaining = deadline - performance.now()
    if (remaining <= 0) {
      const what = options.description ?? 'condition'
      const because =
        lastError === undefined
          ? ''
          : `; last error: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)}`
      throw new Error(
        `timed out after ${timeoutMs} ms (${attempts} attempts) waiting for ${what}${because}`,
        {
          cause: lastError,
        },
      )
    }
    await sleep(
      Math.min(interval, remaining),
      undefined,
      options.signal ? { signal: options.signal } : {},
    )
    interval = Math.min(interval * 2, maxIntervalMs)
  }
}
