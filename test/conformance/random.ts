/** A small seeded PRNG (mulberry32), so a failing randomized run can be replayed from its seed. */
export class Random {
  private state: number

  constructor(readonly seed: number) {
    this.state = seed >>> 0
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p
  }

  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)]
    if (item === undefined) throw new Error('pick from an empty list')
    return item
  }
}

/** The seed for this run: CONFORMANCE_SEED when set (to replay a failure), else a fresh one. */
export function runSeed(): number {
  const fromEnv = process.env.CONFORMANCE_SEED
  if (fromEnv !== undefined && fromEnv !== '') return Number(fromEnv) >>> 0
  return (Math.random() * 2 ** 32) >>> 0
}
