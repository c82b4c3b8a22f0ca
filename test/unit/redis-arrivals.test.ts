/**
 * The Redis watch's arrival order without a server (`src/backends/redis/arrivals.ts`): scripted
 * arrivals on the masters of a session, and the order in which the session would turn them into
 * change events. A barrier is a PING on every subscriber: its cut-off is what had arrived when the
 * PINGs went out (`order.arrived`), and `settle(cutoff)` is its answer.
 */
import { describe, expect, it } from 'vitest'
import { ArrivalOrder, type Unit } from '../../src/backends/redis/arrivals.js'

const A = 0
const B = 1

/** A store's write message: `writer`'s write number `sequence`, to `keys`. */
function message(writer: string, sequence: number, ...keys: string[]) {
  return {
    writer,
    sequence: BigInt(sequence),
    writes: keys.map((key) => ({ key, value: new TextEncoder().encode(`${writer}${sequence}`) })),
  }
}

/** A unit as a label: `W3` for writer W's write 3, `read x` for a keyspace event of key x. */
function label(unit: Unit): string {
  return unit.kind === 'read' ? `read ${unit.key}` : `${unit.writer}${unit.sequence}`
}

/** Everything queued, as labels. */
function drain(order: ArrivalOrder): string[] {
  return order.take().map(label)
}

describe('ArrivalOrder on one master', () => {
  it('queues everything as it arrives, and never waits for a barrier', () => {
    const order = new ArrivalOrder(1)
    order.write(A, message('W', 7, 'a'))
    order.read(A, 'x')
    order.write(A, message('V', 2, 'b'))
    order.write(A, message('W', 3, 'c'))
    expect(order.waiting).toBe(false)
    expect(drain(order)).toEqual(['W7', 'read x', 'V2', 'W3'])
    expect(order.queued).toBe(false)
  })

  it('takes batches of at most the given number of keys, at least one unit each', () => {
    const order = new ArrivalOrder(1)
    order.write(A, message('W', 1, 'a', 'b', 'c'))
    order.read(A, 'x')
    order.read(A, 'y')
    order.write(A, message('W', 2, 'd', 'e', 'f', 'g'))
    expect(order.take(4).map(label)).toEqual(['W1', 'read x'])
    expect(order.take(2).map(label)).toEqual(['read y'])
    expect(order.take(2).map(label)).toEqual(['W2'])
    expect(order.take(2)).toEqual([])
  })
})

describe('ArrivalOrder on two masters', () => {
  it('holds a new writer until a barrier, then gives its writes in the order it made them', () => {
    const order = new ArrivalOrder(2)
    // W wrote 1 to a key on A, then 2 to a key on B; B's connection was faster.
    order.write(B, message('W', 2, 'b'))
    order.read(A, 'x')
    order.write(A, message('W', 1, 'a'))
    // A read never waits; W's messages wait: is an earlier one of W's still coming?
    expect(drain(order)).toEqual(['read x'])
    expect(order.waiting).toBe(true)
    const cutoff = order.arrived
    order.settle(cutoff)
    expect(order.waiting).toBe(false)
    expect(drain(order)).toEqual(['W1', 'W2'])
    // W is known now: its next writes go as they come, in its order, with no barrier.
    order.write(A, message('W', 3, 'a'))
    order.write(B, message('W', 4, 'b'))
    expect(order.waiting).toBe(false)
    expect(drain(order)).toEqual(['W3', 'W4'])
  })

  it('holds a writer’s message that overtook its predecessor until the predecessor comes', () => {
    const order = new ArrivalOrder(2)
    order.write(A, message('W', 1, 'a'))
    order.settle(order.arrived)
    expect(drain(order)).toEqual(['W1'])
    order.write(B, message('W', 3, 'b'))
    // A master's stream is never reordered: what B delivers after W3 waits behind it.
    order.read(B, 'y')
    order.read(A, 'x')
    expect(drain(order)).toEqual(['read x'])
    order.write(A, message('W', 2, 'a'))
    expect(drain(order)).toEqual(['W2', 'W3', 'read y'])
    expect(order.waiting).toBe(false)
  })

  it('lets a barrier settle a predecessor that never comes (its write failed unpublished)', () => {
    const order = new ArrivalOrder(2)
    order.write(A, message('W', 4, 'a'))
    order.settle(order.arrived)
    expect(drain(order)).toEqual(['W4'])
    // W5 failed before it published: W6 waits for it until a barrier shows it is not coming.
    order.write(B, message('W', 6, 'b'))
    expect(drain(order)).toEqual([])
    expect(order.waiting).toBe(true)
    order.settle(order.arrived)
    expect(drain(order)).toEqual(['W6'])
    order.write(A, message('W', 7, 'a'))
    expect(drain(order)).toEqual(['W7'])
  })

  it('settles only what arrived before the barrier’s PINGs went out', () => {
    const order = new ArrivalOrder(2)
    // V's first message waits: a barrier goes out.
    order.write(A, message('V', 1, 'v'))
    const cutoff = order.arrived
    // While the PINGs are out: A answers its PING, then W writes 4 to A and 5 to B. W5 arrives
    // before B answers; W4, published on A after A's answer, arrives after the barrier.
    order.write(B, message('W', 5, 'b'))
    order.settle(cutoff)
    // V1 arrived before the PINGs: settled. W5 arrived after them: its predecessor may still be
    // coming (it did), so W5 waits for the next barrier.
    expect(drain(order)).toEqual(['V1'])
    expect(order.waiting).toBe(true)
    order.write(A, message('W', 4, 'a'))
    order.settle(order.arrived)
    expect(drain(order)).toEqual(['W4', 'W5'])
  })

  it('settles nothing that arrived while the PINGs were out, even if all before went', () => {
    const order = new ArrivalOrder(2)
    order.write(A, message('X', 2, 'x'))
    order.settle(order.arrived)
    expect(drain(order)).toEqual(['X2'])
    // X4 overtook X3: a barrier goes out; X3 arrives meanwhile and both go.
    order.write(A, message('X', 4, 'x'))
    const cutoff = order.arrived
    order.write(B, message('X', 3, 'y'))
    expect(drain(order)).toEqual(['X3', 'X4'])
    // Then W's write 2 arrives on B, still during the barrier; W1 is on its way to A.
    order.write(B, message('W', 2, 'b'))
    order.settle(cutoff)
    expect(drain(order)).toEqual([])
    order.write(A, message('W', 1, 'a'))
    order.settle(order.arrived)
    expect(drain(order)).toEqual(['W1', 'W2'])
  })

  it('breaks a deadlock of concurrent writers by arrival, among arrivals before the PINGs', () => {
    const order = new ArrivalOrder(2)
    // X and Y wrote concurrently; each master saw them in the other order.
    order.write(A, message('X', 2, 'a'))
    order.write(B, message('Y', 2, 'b'))
    order.write(A, message('Y', 1, 'a'))
    order.write(B, message('X', 1, 'b'))
    order.settle(order.arrived)
    // X from 1, Y from 1: each head waits for a message behind the other head. X2 came first.
    expect(drain(order)).toEqual(['X2', 'Y1', 'Y2', 'X1'])
  })
})

describe('ArrivalOrder around the listing', () => {
  it('queues what arrived before the listing’s barrier again as one read per key', () => {
    const order = new ArrivalOrder(2)
    order.write(B, message('W', 2, 'b', 'c'))
    order.read(A, 'a')
    order.write(A, message('W', 1, 'a'))
    order.read(B, 'b')
    expect(order.lowestPending()).toBe(1)
    expect([...order.pendingWrites()].sort()).toEqual(['a', 'b', 'c'])
    order.rereadAll()
    expect(order.waiting).toBe(false)
    // Each key once, from the master of its last arrival, numbered as that arrival (in any order:
    // they are all reads).
    const reads = order.take().map((unit) => [label(unit), unit.seq, unit.endpoint])
    expect(reads.sort()).toEqual([
      ['read a', 3, A],
      ['read b', 4, B],
      ['read c', 1, B],
    ])
    expect(order.lowestPending()).toBe(Infinity)
    // W's writes so far count as seen: its next one goes without a barrier.
    order.write(A, message('W', 3, 'a'))
    expect(drain(order)).toEqual(['W3'])
  })
})
