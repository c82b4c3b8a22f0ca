/**
 * A chaos schedule, drawn from a seed: the orchestrator's options, the consumers and when they
 * come and go, and the faults with their times. The writer's operations are drawn from the same
 * seed as they run (engine.ts), so a seed replays the same schedule; the interleaving with a
 * real server's timing is what varies.
 */
import { Random } from '../conformance/random.js'
import type { Behaviour } from './checker.js'

/** One consumer of the schedule. */
export interface ConsumerPlan {
  readonly name: string
  /** Prefixes relative to the schedule's key root. */
  readonly prefixes: readonly string[]
  readonly behaviour: Behaviour
  readonly maxInFlight?: number
  /** When it registers (ms after start); 0: before `start()`. */
  readonly registerAt: number
  /** When it is closed, and how long after that it registers again (same name). */
  readonly reopen?: { readonly at: number; readonly after: number }
  /** When its `events$` subscriber leaves, and how long after that one comes back. */
  readonly resubscribe?: { readonly at: number; readonly after: number }
}

/** One fault: its kind (one the target offers), when it starts, how long it holds. */
export interface FaultPlan {
  readonly kind: string
  readonly at: number
  readonly holdMs: number
}

export interface Schedule {
  readonly seed: number
  readonly backend: string
  /** How long writers and faults run (ms); then every fault is healed and the run quiesces. */
  readonly activityMs: number
  /** The longest pause of the writer between operations (ms). */
  readonly writeGapMs: number
  readonly maxInFlight: number
  readonly resyncAfterReconnect: boolean
  readonly consumers: readonly ConsumerPlan[]
  readonly faults: readonly FaultPlan[]
}

/** Key areas under the root: overlapping on purpose (`a/` holds `a/b/`). */
export const AREAS = ['a/', 'a/b/', 'c/', 't/'] as const
/** The keys the writer writes (TTL keys are `t/<n>`, each written once). */
export const KEYS = ['a/1', 'a/2', 'a/b/1', 'a/b/2', 'a/b/3', 'c/1', 'c/2', 'd/1'] as const
const PREFIX_SETS: readonly (readonly string[])[] = [
  [''],
  ['a/'],
  ['a/b/', 'c/'],
  ['a/', 'a/b/'],
  ['c/', 't/'],
  ['a/b/'],
  ['', 'c/'],
]

/** Draws the schedule of `seed` for a backend offering `faultKinds`. */
export function drawSchedule(
  seed: number,
  backend: string,
  faultKinds: readonly string[],
  activityMs: number,
): Schedule {
  const random = new Random(seed)
  const count = 2 + random.int(3)
  const consumers: ConsumerPlan[] = []
  for (let i = 0; i < count; i++) {
    const slow = random.chance(0.5)
    const late = i > 0 && random.chance(0.3)
    const registerAt = late ? 1 + random.int(Math.floor(activityMs * 0.6)) : 0
    const plan: ConsumerPlan = {
      name: `c${i}`,
      prefixes: random.pick(PREFIX_SETS),
      behaviour: { pace: slow ? 'slow' : 'fast', maxDelayMs: slow ? 20 + random.int(180) : 0 },
      registerAt,
      ...(random.chance(0.3) ? { maxInFlight: 1 + random.int(4) } : {}),
      ...(random.chance(0.25)
        ? {
            reopen: {
              at: registerAt + 50 + random.int(Math.floor(activityMs * 0.5)),
              after: random.int(300),
            },
          }
        : random.chance(0.2)
          ? {
              resubscribe: {
                at: registerAt + 50 + random.int(Math.floor(activityMs * 0.5)),
                after: random.int(300),
              },
            }
          : {}),
    }
    consumers.push(plan)
  }
  const faults: FaultPlan[] = []
  if (faultKinds.length > 0) {
    let at = 50 + random.int(300)
    while (at < activityMs * 0.8) {
      const holdMs = 50 + random.int(600)
      faults.push({ kind: random.pick(faultKinds), at, holdMs })
      at += holdMs + 100 + random.int(500)
    }
  }
  return {
    seed,
    backend,
    activityMs,
    writeGapMs: 5 + random.int(40),
    maxInFlight: random.pick([1, 1, 2, 4]),
    resyncAfterReconnect: random.chance(0.3),
    consumers,
    faults,
  }
}

/** The schedule in a few lines: what to read first when it fails. */
export function describeSchedule(schedule: Schedule): string {
  const consumers = schedule.consumers.map((c) => {
    const parts = [
      `[${c.prefixes.map((p) => (p === '' ? '*' : p)).join(' ')}]`,
      c.behaviour.pace === 'slow' ? `slow<=${c.behaviour.maxDelayMs}ms` : 'fast',
    ]
    if (c.maxInFlight !== undefined) parts.push(`inflight ${c.maxInFlight}`)
    if (c.registerAt > 0) parts.push(`late @${c.registerAt}`)
    if (c.reopen) parts.push(`closed @${c.reopen.at} reopened +${c.reopen.after}`)
    if (c.resubscribe) parts.push(`unsubscribed @${c.resubscribe.at} back +${c.resubscribe.after}`)
    return `${c.name} ${parts.join(', ')}`
  })
  const faults = schedule.faults.map((f) => `${f.kind}@${f.at}+${f.holdMs}`)
  return [
    `seed ${schedule.seed} on ${schedule.backend}: ${schedule.activityMs} ms of writes (gap <=${schedule.writeGapMs} ms), maxInFlight ${schedule.maxInFlight}${schedule.resyncAfterReconnect ? ', resyncAfterReconnect' : ''}`,
    `  consumers: ${consumers.join('; ')}`,
    `  faults: ${faults.length === 0 ? 'none' : faults.join(', ')}`,
  ].join('\n')
}
