/** What every workload gets, and how it alternates the two sides. */
import type { Backend } from '../lib/backend.js'
import { collectGarbage } from '../lib/gc.js'
import { oursWatch } from '../lib/ours.js'

export interface Settings {
  /** Timed runs per side (the median is reported). */
  readonly runs: number
  /** Untimed runs per side first, so both sides run JIT-compiled code when timed. */
  readonly warmups: number
  /** Print each run's figures. */
  readonly verbose: boolean
  /** The sides to run (both for a ratio; one alone to profile it). */
  readonly sides: readonly Side[]
}

export type Side = 'ours' | 'raw'

/**
 * Starts one side's watcher of `prefix`, calling `onPut` with each put key: ours is a one-consumer
 * orchestrator over a fresh store, raw the backend's hand-written watcher. Resolves, once it
 * watches, with the function that stops it (and closes our store).
 */
export async function startWatcher(
  backend: Backend,
  side: Side,
  prefix: string,
  onPut: (key: string) => void,
): Promise<() => Promise<void>> {
  if (side === 'raw') {
    const watcher = await backend.rawWatch(prefix, onPut)
    return () => watcher.close()
  }
  const store = await backend.ourStore()
  const watcher = await oursWatch(store, prefix, onPut)
  return async () => {
    watcher.close()
    await store.close()
  }
}

/**
 * Runs `once` for both sides `runs` times (after `warmups` untimed runs of each), alternating
 * which side goes first, so drift on a shared machine hits both; garbage is collected before
 * each run.
 */
export async function alternate<T>(
  settings: Settings,
  label: string,
  once: (side: Side, run: number) => Promise<T>,
  show: (value: T) => string,
): Promise<Record<Side, T[]>> {
  const results: Record<Side, T[]> = { ours: [], raw: [] }
  const sides = (['ours', 'raw'] as const).filter((side) => settings.sides.includes(side))
  for (let warmup = 0; warmup < settings.warmups; warmup++) {
    for (const side of sides) {
      collectGarbage()
      await once(side, -1 - warmup)
    }
  }
  for (let run = 0; run < settings.runs; run++) {
    const order = run % 2 === 0 ? sides : [...sides].reverse()
    for (const side of order) {
      collectGarbage()
      const value = await once(side, run)
      results[side].push(value)
      if (settings.verbose) console.log(`  ${label} run ${run + 1} ${side}: ${show(value)}`)
    }
  }
  return results
}

/** A name for run number `run` of `alternate` (negative: a warm-up), for keys and prefixes. */
export function runName(side: Side, run: number): string {
  return run < 0 ? `${side}-warmup${-run}` : `${side}-${run + 1}`
}

/** Resolves when `check()` holds (checked on every call of the returned `poke`), or rejects after `ms`. */
export function waitFor(
  check: () => boolean,
  ms: number,
  what: string,
): { poke: () => void; done: Promise<void> } {
  let resolve!: () => void
  let reject!: (error: Error) => void
  const done = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  const timer = setTimeout(() => {
    reject(new Error(`timed out after ${ms} ms waiting for ${what}`))
  }, ms)
  const poke = () => {
    if (check()) {
      clearTimeout(timer)
      resolve()
    }
  }
  poke()
  return { poke, done }
}
