/**
 * The chaos run's fixed-seed slice on the memory store behind the fault store (`npm run chaos`
 * runs hundreds; see test/chaos/README.md), and the regression the run found there: a resync
 * handed out and superseded by the next round before its ack let deltas through while the
 * consumer still held it (seeds 1, 14 and 17 of the first run).
 */
import { lastValueFrom } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { createDatasync, type ConsumerEvent } from '../../src/index.js'
import { createFaultStore } from '../../src/testing/index.js'
import { pollUntil } from '../servers/index.js'
import { runBackend } from '../chaos/report.js'
import { memoryTarget } from '../chaos/targets/memory.js'

describe('chaos: memory with the fault store', () => {
  it(
    'fixed seeds keep every promise, seeds 1, 14 and 17 included',
    { timeout: 120_000 },
    async () => {
      const lines: string[] = []
      const summary = await runBackend(memoryTarget(), [1, 2, 3, 4, 5, 6, 7, 8, 14, 17], {
        activityMs: 1500,
        convergeMs: 10_000,
        log: (line) => lines.push(line),
      })
      expect(summary.aborted).toBeUndefined()
      expect(summary.schedules).toBe(10)
      expect(summary.events).toBeGreaterThan(100)
      expect([...summary.faults.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(10)
      expect(lines.filter((line) => line.includes('VIOLATION'))).toEqual([])
      expect(summary.violations).toBe(0)
    },
  )

  it('a resync superseded before its ack is delivered again, and holds deltas back (P3)', async () => {
    const store = createFaultStore<string>()
    const sync = createDatasync(store, { ackTimeout: '20s' })
    const seen: ConsumerEvent<string>[] = []
    const held: ConsumerEvent<string>[] = []
    sync.register<string>('fast', { prefixes: ['k/'] }).events$.subscribe((event) => {
      seen.push(event)
      event.done()
    })
    sync.register<string>('slow', { prefixes: ['k/'] }).events$.subscribe((event) => {
      held.push(event)
    })
    sync.start()
    await pollUntil(() => held.length === 1, { description: "the slow consumer's resync" })
    store.breakWatch() // a new round, while 'slow' holds its resync unacknowledged
    await pollUntil(() => held.length === 2, { description: 'the resync handed out again' })
    expect(held.map((event) => event.kind)).toEqual(['resync', 'resync'])
    await lastValueFrom(store.inner.put('k/1', 'v1'))
    // 'fast' gets no delta while 'slow' has not acknowledged the round's resync.
    expect(seen.filter((event) => event.kind === 'change')).toEqual([])
    held[1]!.done()
    await pollUntil(() => seen.some((event) => event.kind === 'change'), {
      description: "the fast consumer's delta after the round",
    })
    held[0]!.done() // the superseded resync's ack: a no-op
    sync.close()
    await store.close()
  })
})
