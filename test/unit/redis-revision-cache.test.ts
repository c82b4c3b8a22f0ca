/**
 * The Redis store's revision table past its capacity (`revisionCacheSize`). Issue 16: listing
 * 300k keys through the default 100k table took about 15 s, because every eviction made a new
 * Map iterator that walked over every slot evicted before it. The table now evicts with one
 * iterator kept across calls; these tests pin its behaviour (least recently touched first,
 * whatever the mix of adds, touches, rewrites and deletes), not its speed. The 300k row of the
 * benchmark (`npm run bench -- --workloads large --backends redis`) shows the speed.
 */
import { describe, expect, it } from 'vitest'
import { revision, type Revision } from '../../src/core/revision.js'
import { RevisionClock } from '../../src/backends/redis/revisions.js'

const value = (n: number) => new TextEncoder().encode(`v${n}`)

/** Whether the clock still knows `key` at `at` (digestAt answers only for a key it holds). */
const knows = (clock: RevisionClock, key: string, at: Revision) =>
  clock.digestAt(key, at) !== undefined

describe('RevisionClock past its capacity', () => {
  it('keeps the most recent `capacity` keys of a listing three times its size', () => {
    const capacity = 1_000
    const clock = new RevisionClock(capacity)
    const at = clock.tick()
    for (let i = 0; i < 3 * capacity; i++) expect(clock.observe(`k${i}`, value(i), at)).toBe(at)
    for (let i = 0; i < 3 * capacity; i++) {
      expect(knows(clock, `k${i}`, at), `k${i}`).toBe(i >= 2 * capacity)
    }
    // A key still held keeps its revision; a forgotten one gets a new count.
    expect(clock.observe(`k${3 * capacity - 1}`, value(3 * capacity - 1))).toBe(at)
    expect(clock.observe('k0', value(0))).toBeGreaterThan(at)
  })

  it('forgets the least recently touched key first, across many rounds of evictions', () => {
    const capacity = 50
    const clock = new RevisionClock(capacity)
    // The reference: a Map in touch order, its first key the least recently touched.
    const model = new Map<string, { revision: Revision; value: number }>()
    let seed = 7
    const random = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
      return seed % n
    }
    for (let step = 0; step < 20_000; step++) {
      const key = `k${random(200)}`
      const action = random(10)
      const known = model.get(key)
      if (action === 0) {
        clock.record(key, undefined, clock.now())
        model.delete(key)
        continue
      }
      const v = action < 6 && known !== undefined ? known.value : step
      const got = clock.observe(key, value(v))
      if (known !== undefined && known.value === v) expect(got).toBe(known.revision)
      else expect(got).toBe(clock.now())
      model.delete(key)
      model.set(key, { revision: got, value: v })
      if (model.size > capacity) model.delete(model.keys().next().value as string)
      if (step % 1_000 === 999) {
        for (let k = 0; k < 200; k++) {
          const entry = model.get(`k${k}`)
          expect(
            entry === undefined ? false : knows(clock, `k${k}`, entry.revision),
            `k${k} at ${step}`,
          ).toBe(entry !== undefined)
        }
      }
    }
  })

  it('keeps working after the table was emptied and filled again', () => {
    const clock = new RevisionClock(3)
    const at = revision(1n)
    for (const key of ['a', 'b', 'c', 'd']) clock.observe(key, value(1), at)
    for (const key of ['b', 'c', 'd']) clock.record(key, undefined, at)
    for (const key of ['e', 'f', 'g', 'h']) clock.observe(key, value(2), at)
    expect(['e', 'f', 'g', 'h'].map((key) => knows(clock, key, at))).toEqual([
      false,
      true,
      true,
      true,
    ])
  })
})
