/**
 * A span of time: milliseconds as a number, or a string such as `'250ms'`, `'10s'`, `'5m'`, `'1h'`.
 */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h'}`

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const

/**
 * Converts a {@link Duration} to milliseconds.
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
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(duration)
  if (!match) {
    throw new TypeError(
      `${what}: expected a duration such as 500, '250ms', '10s', '5m' or '1h', got ${JSON.stringify(duration)}`,
    )
  }
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]
}
