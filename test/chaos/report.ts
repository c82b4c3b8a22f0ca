/** Runs a backend's schedules and sums them up as the table `npm run chaos` prints. */
import { runSchedule, type ScheduleResult } from './engine.js'
import { describeSchedule, drawSchedule } from './schedule.js'
import type { Target } from './target.js'

export interface RunOptions {
  readonly activityMs: number
  readonly convergeMs: number
  readonly verbose?: boolean
  /** Overrides the schedules' drawn `resyncAfterReconnect` (to tell a finding apart). */
  readonly resyncAfterReconnect?: boolean
  /** Where progress goes. @default console.log */
  readonly log?: (line: string) => void
}

export interface BackendSummary {
  readonly backend: string
  readonly schedules: number
  readonly faults: ReadonlyMap<string, number>
  readonly events: number
  readonly changes: number
  readonly violations: number
  /** Schedules with at least one violation, by seed. */
  readonly failedSeeds: readonly number[]
  readonly slowestConvergenceMs: number
  readonly writes: number
  readonly faultErrors: number
  /** Why the backend's run stopped early (its servers did not start, say). */
  readonly aborted?: string
  readonly results: readonly ScheduleResult[]
}

export async function runBackend(
  target: Target,
  seeds: readonly number[],
  options: RunOptions,
): Promise<BackendSummary> {
  const log =
    options.log ??
    ((line: string) => {
      console.log(line)
    })
  const results: ScheduleResult[] = []
  let aborted: string | undefined
  log(`\n== ${target.name}: starting servers`)
  try {
    await target.start()
    for (const seed of seeds) {
      const drawn = drawSchedule(
        seed,
        target.name,
        target.faults.map((f) => f.kind),
        options.activityMs,
      )
      const schedule =
        options.resyncAfterReconnect === undefined
          ? drawn
          : { ...drawn, resyncAfterReconnect: options.resyncAfterReconnect }
      const result = await runSchedule(target, schedule, { convergeMs: options.convergeMs })
      results.push(result)
      const faults = [...result.faults].map(([kind, n]) => `${kind} x${n}`).join(', ')
      log(
        `${target.name} seed ${seed}: ${result.events} events, ${result.writes} writes, faults [${faults}], converged in ${result.convergenceMs} ms, ${result.violations.length} violations`,
      )
      if (result.violations.length > 0 || options.verbose === true) {
        log(describeSchedule(schedule))
        for (const violation of result.violations.slice(0, 20)) log(`  VIOLATION ${violation}`)
        if (result.violations.length > 20) log(`  ... ${result.violations.length - 20} more`)
        log(`  writer log tail: ${result.logTail.join(' | ')}`)
        log(`  replay: npm run chaos -- --backend ${target.name} --seed ${seed}`)
      }
      for (const error of result.faultErrors) log(`  fault error: ${error}`)
      if (result.syncErrors.size > 0) {
        log(`  errors$: ${[...result.syncErrors].map(([code, n]) => `${code} x${n}`).join(', ')}`)
      }
    }
  } catch (error) {
    aborted = error instanceof Error ? (error.stack ?? error.message) : String(error)
    log(`${target.name}: aborted: ${aborted}`)
  } finally {
    await target.stop().catch((error: unknown) => {
      log(`${target.name}: stop failed: ${String(error)}`)
    })
  }
  const faults = new Map<string, number>()
  for (const result of results) {
    for (const [kind, n] of result.faults) faults.set(kind, (faults.get(kind) ?? 0) + n)
  }
  const sum = (pick: (r: ScheduleResult) => number) => results.reduce((n, r) => n + pick(r), 0)
  return {
    backend: target.name,
    schedules: results.length,
    faults,
    events: sum((r) => r.events),
    changes: sum((r) => r.changes),
    violations: sum((r) => r.violations.length),
    failedSeeds: results.filter((r) => r.violations.length > 0).map((r) => r.schedule.seed),
    slowestConvergenceMs: Math.max(0, ...results.map((r) => r.convergenceMs)),
    writes: sum((r) => r.writes),
    faultErrors: sum((r) => r.faultErrors.length),
    ...(aborted === undefined ? {} : { aborted }),
    results,
  }
}

export function printTable(summaries: readonly BackendSummary[], log = console.log): void {
  const header = [
    'backend',
    'schedules',
    'faults by kind',
    'events checked (changes)',
    'writes',
    'violations',
    'slowest convergence',
  ]
  const rows = summaries.map((s) => [
    s.backend + (s.aborted === undefined ? '' : ' (ABORTED)'),
    String(s.schedules),
    [...s.faults].map(([kind, n]) => `${kind} ${n}`).join(', ') || 'none',
    `${s.events} (${s.changes})`,
    String(s.writes),
    String(s.violations) + (s.failedSeeds.length > 0 ? ` seeds ${s.failedSeeds.join(',')}` : ''),
    `${s.slowestConvergenceMs} ms`,
  ])
  log(`| ${header.join(' | ')} |`)
  log(`| ${header.map(() => '---').join(' | ')} |`)
  for (const row of rows) log(`| ${row.join(' | ')} |`)
}
