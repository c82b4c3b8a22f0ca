/** The data set of the benchmarks: keys under two consumer prefixes, JSON values of ~80 bytes. */

/** The value stored under key number `i`: an interface's config, about 80 bytes of JSON. */
export interface Iface {
  readonly id: number
  readonly name: string
  readonly mtu: number
  readonly enabled: boolean
  readonly addr: string
}

/** The value of key number `i`, as an object. */
export function ifaceOf(i: number, generation = 0): Iface {
  return {
    id: i,
    name: `iface-${i}`,
    mtu: 1500 + generation,
    enabled: i % 2 === 0,
    addr: `10.${(i >> 8) & 255}.${i & 255}.1/24`,
  }
}

/** The value of key number `i`, as the JSON text that is stored. */
export function valueText(i: number, generation = 0): string {
  return JSON.stringify(ifaceOf(i, generation))
}

/**
 * A data set under `root`: keys alternate between the two consumers' prefixes (`root/a/`,
 * `root/b/`), so each consumer holds half of them and every key is delivered exactly once.
 */
export interface DataSet {
  readonly root: string
  readonly prefixes: readonly [string, string]
  readonly count: number
  key(i: number): string
}

export function dataSet(root: string, count: number): DataSet {
  const prefixes = [`${root}/a/`, `${root}/b/`] as const
  return {
    root,
    prefixes,
    count,
    key: (i) => `${prefixes[i % 2]}${String(i).padStart(7, '0')}`,
  }
}

/** Calls `fn` for slices of [0, count) of at most `size`, at most `concurrency` at a time. */
export async function inBatches(
  count: number,
  size: number,
  concurrency: number,
  fn: (from: number, to: number) => Promise<void>,
): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < count) {
      const from = next
      const to = Math.min(count, from + size)
      next = to
      await fn(from, to)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}
