/**
 * The chaos run's fixed-seed slice against real servers (`npm run chaos` runs a hundred schedules
 * per backend; see test/chaos/README.md): a few short schedules per backend, each checked by the
 * chaos checker, with zero violations. Each backend's servers start and stop inside its test.
 */
import { describe, expect, it } from 'vitest'
import { runBackend } from '../chaos/report.js'
import { TARGETS } from '../chaos/targets/index.js'

/** Seeds that between them draw every fault kind of each backend at least once or twice. */
const SEEDS = [1, 2, 3]
const ACTIVITY_MS = 1200

/**
 * Left out until its finding is fixed (issue 16, the chaos run's NATS finding): after a restart a
 * NATS consumer can see a delete nobody made. `npm run chaos -- --backend nats --seed 1` replays it.
 */
const KNOWN_OPEN = new Set(['nats'])

describe('chaos: fixed seeds against real servers', () => {
  for (const backend of Object.keys(TARGETS).filter(
    (name) => name !== 'memory' && !KNOWN_OPEN.has(name),
  )) {
    it(
      `${backend}: seeds ${SEEDS.join(', ')} keep every promise`,
      { timeout: 300_000 },
      async () => {
        const lines: string[] = []
        const summary = await runBackend(TARGETS[backend]!(), SEEDS, {
          activityMs: ACTIVITY_MS,
          convergeMs: 30_000,
          log: (line) => lines.push(line),
        })
        expect(summary.aborted).toBeUndefined()
        expect(summary.schedules).toBe(SEEDS.length)
        expect(summary.events).toBeGreaterThan(0)
        expect([...summary.faults.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
        expect(lines.filter((line) => line.includes('VIOLATION'))).toEqual([])
        expect(summary.violations).toBe(0)
      },
    )
  }
})
