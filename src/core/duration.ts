/** A unit of a {@link Duration} string, as Go's `time.ParseDuration` reads them. */
export type DurationUnit = 'ns' | 'us' | 'µs' | 'μs' | 'ms' | 's' | 'm' | 'h'

/**
 * A span of time: milliseconds as a number, or a string in Go's `time.Duration` form, one or
 * more numbers each with a unit: `'250ms'`, `'10s'`, `'5m'`, `'1h'`, `'1m30s'`,
 * `'1h2m3.5s'`, `'1.5h'`, `'100us'`, `'0'`. Units are `ns`, `us` (or `µs`), `ms`, `s`, `m` and
 * `h`, as in the Go original's configuration files. A string without a unit (other than `'0'`)
 * is refused, since `'5'` could mean seconds or milliseconds.
 */
export type Duration =
  | number
  | '0'
  | `${number}${DurationUnit}`
  | `${number}${DurationUnit}${number}${DurationUnit}${string}`

const UNIT_MS: Readonly<Record<DurationUnit, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
}

/** One number and its unit; `ms` before `m`, and `m` only when not followed by `s`. */
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y

/**
 * The milliseconds a Go-form duration string stands for (see {@link Duration}), or undefined when
 * it is not one.
 */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0
  if (text === '') return undefined
  PART.lastIndex = 0
  let total = 0
  while (PART.lastIndex < text.length) {
    const match = PART.exec(text)
    if (match === null) return undefined
    total += Number(match[1]) * UNIT_MS[match[2] as DurationUnit]
  }
  return Number.isFinite(total) ? total : undefined
}

/** Whether `text` is a duration string {@link toMillis} reads. */
export function isDurationText(text: string): text is Exclude<Duration, number> {
  return parseDuration(text) !== undefined
}

/**
 * Converts a {@link Duration} to milliseconds (fractions kept: `'1500us'` is 1.5).
 *
 * @throws TypeError naming `what` when the value is not a non-negative duration.
 */
export function toMillis(duration: Duration, what = 'duration'): number {
  if (typeof duration === 'number') {
    if (!Number.isFinite(duration) || duration < 0) {
      throw new TypeError(
        `${what}: expected a non-negative number of milliseconds, got ${duration}`,
      )
    }
    return duration
  }
  const ms = typeof duration === 'string' ? parseDuration(duration) : undefined
  if (ms === undefined) {
    throw new TypeError(
      `${what}: expected a duration such as 500, '250ms', '10s', '5m', '1h' or '1m30s', got ${JSON.stringify(duration)}`,
    )
  }
  return ms
}
