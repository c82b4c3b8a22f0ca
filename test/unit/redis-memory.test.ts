/**
 * What a Redis watch session remembers of the values it reported, without a server
 * (`src/backends/redis/memory.ts`, `lean-memory.ts`). Units are numbered in arrival order; a read
 * is made after its unit arrived, and its barrier answered once every unit up to `until` had.
 */
import { describe, expect, it } from 'vitest'
import { LeanMemory } from '../../src/backends/redis/lean-memory.js'
import { ValueMemory } from '../../src/backends/redis/memory.js'

const bytes = (text: string) => new TextEncoder().encode(text)

describe('LeanMemory', () => {
  it('settles the reads of units queued during the listing against the listed values', () => {
    const memory = new LeanMemory()
    // Units 1–3 arrived while the watch listed; they are read again after the listing.
    memory.listed(new Map([['a', bytes('1')]]), 3)
    // The read finds what the listing reported: the unit's write was in the listing already.
    expect(memory.read('a', bytes('1'), 2, 5)).toBeUndefined()
    // A key the listing did not have, still missing: its delete was reported by the listing.
    expect(memory.read('gone', undefined, 3, 5)).toBeUndefined()
    // A value the listing did not report is a change, without prev.
    expect(memory.read('b', bytes('2'), 1, 5)).toEqual({ op: 'put', key: 'b', value: bytes('2') })
  })

  it('reports a rewrite after the listing even when the value is the same', () => {
    const memory = new LeanMemory()
    memory.listed(new Map([['a', bytes('1')]]), 3)
    // Unit 4 arrived after the listing's barrier: a new write of the same value (as etcd reports).
    expect(memory.read('a', bytes('1'), 4, 6)).toEqual({ op: 'put', key: 'a', value: bytes('1') })
    expect(memory.read('a', undefined, 7, 8)).toEqual({ op: 'delete', key: 'a' })
  })

  it('compares a read with the last value reported for a unit that may predate it', () => {
    const memory = new LeanMemory()
    memory.listed(new Map(), 0)
    // A read after unit 1, its barrier answered with units up to 4 in.
    expect(memory.read('k', bytes('x'), 1, 4)).toEqual({ op: 'put', key: 'k', value: bytes('x') })
    // Unit 3 arrived before that barrier: the read may have seen its write already.
    expect(memory.read('k', bytes('x'), 3, 6)).toBeUndefined()
    // Unit 7 arrived after the last read's barrier (until 6): a new write.
    expect(memory.read('k', bytes('x'), 7, 9)).toEqual({ op: 'put', key: 'k', value: bytes('x') })
  })

  it('always reports a written value, and a later read compares with it', () => {
    const memory = new LeanMemory()
    memory.listed(new Map([['k', bytes('v')]]), 2)
    // A write message carries its exact value: a put even when it equals the listed one.
    expect(memory.written('k', bytes('v'), 5)).toEqual({ op: 'put', key: 'k', value: bytes('v') })
    expect(memory.written('d', undefined, 6)).toEqual({ op: 'delete', key: 'd' })
    // A read after unit 4 (before the write message 5): it finds the message's value, reported.
    expect(memory.read('k', bytes('v'), 4, 7)).toBeUndefined()
    expect(memory.read('d', undefined, 6, 7)).toBeUndefined()
  })

  it('forgets the values no pending unit can be compared with any more', () => {
    const memory = new LeanMemory()
    memory.listed(
      new Map([
        ['a', bytes('1')],
        ['b', bytes('2')],
      ]),
      3,
    )
    expect(memory.read('c', bytes('3'), 1, 5)).toBeDefined()
    expect(memory.size).toBe(3)
    // Unit 2 still pending: the listing and the read (until 5) may still settle it.
    memory.forget(() => 2)
    expect(memory.size).toBe(3)
    // Nothing before unit 4 pending: the listing goes; the read (until 5) stays.
    memory.forget(() => 4)
    expect(memory.size).toBe(1)
    // Nothing pending at all.
    memory.forget(() => Infinity)
    expect(memory.size).toBe(0)
    // Forgotten: a read of the listed value is reported again.
    expect(memory.read('a', bytes('1'), 2, 9)).toEqual({ op: 'put', key: 'a', value: bytes('1') })
  })

  it('starts over at each listing', () => {
    const memory = new LeanMemory()
    memory.listed(new Map(), 0)
    memory.written('k', bytes('old'), 1)
    memory.listed(new Map([['k', bytes('new')]]), 4)
    expect(memory.size).toBe(1)
    expect(memory.read('k', bytes('new'), 3, 5)).toBeUndefined()
  })

  it('records nothing in the revision table', () => {
    expect(new LeanMemory().records).toBe(false)
    expect(new ValueMemory().records).toBe(true)
  })
})

describe('ValueMemory', () => {
  it('gives prev, drops reads that change nothing, keeps written rewrites', () => {
    const memory = new ValueMemory()
    memory.listed(new Map([['a', bytes('1')]]))
    expect(memory.read('a', bytes('1'))).toBeUndefined()
    expect(memory.written('a', bytes('1'))).toEqual({
      op: 'put',
      key: 'a',
      value: bytes('1'),
      prev: bytes('1'),
    })
    expect(memory.read('a', bytes('2'))).toEqual({
      op: 'put',
      key: 'a',
      value: bytes('2'),
      prev: bytes('1'),
    })
    expect(memory.read('b', bytes('3'))).toEqual({ op: 'put', key: 'b', value: bytes('3') })
    expect(memory.written('a', undefined)).toEqual({ op: 'delete', key: 'a', prev: bytes('2') })
    // Gone already: no change, read or written.
    expect(memory.read('a', undefined)).toBeUndefined()
    expect(memory.written('a', undefined)).toBeUndefined()
  })
})
