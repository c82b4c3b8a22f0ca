/**
 * Runs one schedule against one target: the orchestrator over the store under test with the
 * schedule's consumers, the writer, the faults, then quiescence: every fault healed, the writer
 * stopped, and every consumer's state compared with the store until they match (or the bound
 * passes, a violation).
 */
import { performance } from 'node:perf_hooks'
import { filter, firstValueFrom, take, timeout } from 'rxjs'
import {
  createDatasync,
  string,
  type Consumer,
  type Datasync,
  type DatasyncError,
} from '../../src/index.js'
import { Random } from '../conformance/random.js'
import { ConsumerCheck, Rounds } from './checker.js'
import { History } from './history.js'
import type { ConsumerPlan, Schedule } from './schedule.js'
import { hold, type FaultContext, type Target } from './target.js'
import { ChaosWriter } from './writer.js'

/** What one schedule did and found. */
export interface ScheduleResult {
  readonly schedule: Schedule
  readonly violations: readonly string[]
  /** Consumer events checked (resyncs and change events). */
  readonly events: number
  readonly changes: number
  readonly faults: ReadonlyMap<string, number>
  /** From the last fault healed to every consumer equal to the store (ms). */
  readonly convergenceMs: number
  readonly writes: number
  readonly writeFailures: number
  /** Faults that could not be injected or undone (the harness, not the code under test). */
  readonly faultErrors: readonly string[]
  /** What the orchestrator reported on `errors$`, by code. */
  readonly syncErrors: ReadonlyMap<string, number>
  /** The tail of the writer's log, for a failing schedule. */
  readonly logTail: readonly string[]
}

export interface EngineOptions {
  /** How long consumers may take to equal the store after the last fault. @default 30_000 */
  readonly convergeMs?: number
}

const text = string()

export async function runSchedule(
  target: Target,
  schedule: Schedule,
  options: EngineOptions = {},
): Promise<ScheduleResult> {
  const convergeMs = options.convergeMs ?? 30_000
  const root = target.root(`chaos-${process.pid}-${schedule.seed}-${Date.now().toString(36)}`)
  const session = await target.open(root)
  const history = new History()
  const t0 = performance.now()
  const clock = () => Math.round(performance.now() - t0)
  const violations: string[] = []
  const faultCounts = new Map<string, number>()
  const faultErrors: string[] = []
  const syncErrors = new Map<string, number>()
  const writer = new ChaosWriter(session.writer, history, root, schedule.seed)
  const sync: Datasync<Uint8Array> = createDatasync(session.store, {
    ackTimeout: '20s',
    maxInFlight: schedule.maxInFlight,
    resyncAfterReconnect: schedule.resyncAfterReconnect,
  })
  const rounds = new Rounds(() => sync.consumers())
  const roundsSubscription = sync.activity$.subscribe((step) => {
    if (step.type === 'round') rounds.roundStarted()
  })
  const errorsSubscription = sync.errors$.subscribe((error: DatasyncError) => {
    syncErrors.set(error.code, (syncErrors.get(error.code) ?? 0) + 1)
  })
  // CHAOS_TRACE=1: every step of the orchestrator, for reading a failing schedule.
  const trace = process.env.CHAOS_TRACE === '1'
  const activity = trace
    ? sync.activity$.subscribe((step) => {
        if (step.type !== 'lag')
          console.log(
            `  ${clock()} ms`,
            JSON.stringify(step, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
          )
      })
    : undefined
  const checks = new Map<string, ConsumerCheck>()
  const live = new Map<string, { plan: ConsumerPlan; consumer: Consumer<string> }>()
  const random = new Random(schedule.seed ^ 0x5bd1e995)

  const register = (plan: ConsumerPlan) => {
    const consumer = sync.register<string>(plan.name, {
      prefixes: plan.prefixes.map((prefix) => root + prefix),
      codec: text,
      ...(plan.maxInFlight === undefined ? {} : { maxInFlight: plan.maxInFlight }),
    })
    live.set(plan.name, { plan, consumer })
    let check = checks.get(plan.name)
    if (check === undefined) {
      check = new ConsumerCheck(
        plan.name,
        history,
        rounds,
        new Random(schedule.seed + plan.name.length * 7919 + Number(plan.name.slice(1))),
        plan.behaviour,
        clock,
      )
      checks.set(plan.name, check)
    }
    check.listen(consumer)
  }

  const at = (ms: number) => hold(Math.max(0, ms - clock()))
  const consumerLane = async (plan: ConsumerPlan) => {
    if (plan.registerAt > 0) {
      await at(plan.registerAt)
      register(plan)
    }
    if (plan.reopen !== undefined) {
      await at(plan.reopen.at)
      checks.get(plan.name)!.stop()
      live.get(plan.name)!.consumer.close()
      live.delete(plan.name)
      await hold(plan.reopen.after)
      register(plan)
    }
    if (plan.resubscribe !== undefined) {
      await at(plan.resubscribe.at)
      const check = checks.get(plan.name)!
      check.stop()
      await hold(plan.resubscribe.after)
      check.listen(live.get(plan.name)!.consumer)
    }
  }

  const context: FaultContext = {
    history,
    root,
    random,
    pauseWriter: () => writer.pause(),
    resumeWriter: () => {
      writer.resume()
    },
  }
  // Faults start once the orchestrator is first in sync: a store that cannot reach its server
  // at its very start fails fast by design (a wrong address is fatal, not an outage).
  let syncedAt = 0
  const firstSync = firstValueFrom(
    sync.status$.pipe(
      filter((status) => status.state === 'in-sync'),
      timeout({ first: convergeMs }),
    ),
  ).then(
    () => {
      syncedAt = clock()
    },
    () => {
      violations.push(`never in sync within ${convergeMs} ms of the start`)
    },
  )
  const faultLane = async () => {
    await firstSync
    for (const plan of schedule.faults) {
      const fault = target.faults.find((f) => f.kind === plan.kind)
      if (fault === undefined) throw new Error(`${target.name} has no fault '${plan.kind}'`)
      await at(syncedAt + plan.at)
      faultCounts.set(plan.kind, (faultCounts.get(plan.kind) ?? 0) + 1)
      try {
        await fault.run(context, plan.holdMs)
      } catch (error) {
        faultErrors.push(`${plan.kind}@${plan.at}: ${String(error)}`)
        writer.resume()
        await target.heal()
      }
    }
  }

  let converged = -1
  try {
    for (const plan of schedule.consumers) if (plan.registerAt === 0) register(plan)
    sync.start()
    const lanes = [
      writer.run(() => clock() >= syncedAt + schedule.activityMs, schedule.writeGapMs),
      faultLane(),
      ...schedule.consumers.map(consumerLane),
    ]
    await Promise.all(lanes)
    writer.resume()
    await target.heal()
    const healed = performance.now()
    converged = await quiesce(session.read.bind(session), root, live, checks, convergeMs)
    if (converged < 0) {
      // What the orchestrator holds too, to tell a lost change from one it never handed out.
      const where = `orchestrator ${currentStatus(sync)}`
      for (const [name, { plan, consumer }] of live) {
        const check = checks.get(name)!
        const expected = await expectedState(session.read.bind(session), root, plan.prefixes)
        const view = new Map([...consumer.view()].map(([key, item]) => [key, item.value]))
        violations.push(
          `consumer '${name}' did not converge within ${convergeMs} ms: ${difference(check.state, expected)} (${where}, listening ${check.listening}, view() against the store: ${difference(view, expected) || 'equal'})`,
        )
      }
    } else {
      converged = Math.round(performance.now() - healed)
      // The orchestrator's own view of each consumer agrees with what it delivered.
      for (const [name, { consumer }] of live) {
        const view = new Map([...consumer.view()].map(([key, item]) => [key, item.value]))
        const state = checks.get(name)!.state
        if (!sameMap(view, state)) {
          violations.push(
            `consumer '${name}': view() differs from its events: ${difference(state, view)}`,
          )
        }
      }
    }
  } finally {
    for (const check of checks.values()) check.stop()
    errorsSubscription.unsubscribe()
    roundsSubscription.unsubscribe()
    activity?.unsubscribe()
    sync.close()
    await session.close()
  }
  for (const check of checks.values()) violations.push(...check.violations)
  let events = 0
  let changes = 0
  for (const check of checks.values()) {
    events += check.events
    changes += check.changes
  }
  for (const refusal of writer.refusals) faultErrors.push(`writer refused: ${refusal}`)
  return {
    schedule,
    violations,
    events,
    changes,
    faults: faultCounts,
    convergenceMs: converged,
    writes: writer.ops,
    writeFailures: writer.failures,
    faultErrors,
    syncErrors,
    logTail: history.log.slice(-15),
  }
}

type Reader = (prefix: string) => Promise<Map<string, string>>

async function expectedState(
  read: Reader,
  root: string,
  prefixes: readonly string[],
): Promise<Map<string, string>> {
  const all = await read(root)
  const full = prefixes.map((prefix) => root + prefix)
  return new Map([...all].filter(([key]) => full.some((prefix) => key.startsWith(prefix))))
}

/** Polls until every listening consumer's state equals the store; ms taken, or -1 at the bound. */
async function quiesce(
  read: Reader,
  root: string,
  live: ReadonlyMap<string, { plan: ConsumerPlan }>,
  checks: ReadonlyMap<string, ConsumerCheck>,
  boundMs: number,
): Promise<number> {
  const start = performance.now()
  let delay = 20
  while (performance.now() - start < boundMs) {
    let all: Map<string, string> | undefined
    try {
      all = await read(root)
    } catch {
      all = undefined // the store is still coming back: read again
    }
    if (all !== undefined) {
      const store = all
      const equal = [...live].every(([name, { plan }]) => {
        const full = plan.prefixes.map((prefix) => root + prefix)
        const expected = new Map(
          [...store].filter(([key]) => full.some((prefix) => key.startsWith(prefix))),
        )
        return sameMap(checks.get(name)!.state, expected)
      })
      if (equal) return performance.now() - start
    }
    await hold(delay)
    delay = Math.min(delay * 2, 250)
  }
  return -1
}

function sameMap(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false
  for (const [key, value] of a) if (b.get(key) !== value) return false
  return true
}

/** The orchestrator's status now (its stream replays the current one at once). */
function currentStatus(sync: Datasync<Uint8Array>): string {
  let state = 'unknown'
  sync.status$.pipe(take(1)).subscribe((status) => (state = status.state))
  return state
}

/** What differs between a consumer's state and the store, briefly. */
function difference(
  state: ReadonlyMap<string, string>,
  store: ReadonlyMap<string, string>,
): string {
  const lines: string[] = []
  for (const [key, value] of store) {
    if (state.get(key) !== value)
      lines.push(`${key}: store '${value}', consumer '${state.get(key)}'`)
  }
  for (const [key, value] of state) {
    if (!store.has(key)) lines.push(`${key}: store none, consumer '${value}'`)
  }
  return lines.slice(0, 6).join('; ') + (lines.length > 6 ? `; ${lines.length - 6} more` : '')
}
