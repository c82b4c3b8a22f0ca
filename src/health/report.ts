import type { StoreStatus } from '../core/store.js'
import type { SyncStatus } from '../sync/types.js'

/**
 * How healthy a component is, from best to worst:
 *
 * 1. `ok`: a store is `ready`, an orchestrator `in-sync`, a check answered `ok`.
 * 2. `starting`: not there yet, and expected to get there: a store `connecting`, an orchestrator
 *    `idle`, `connecting` or `resyncing` (a round is being delivered), a check not answered yet.
 * 3. `degraded`: a store lost its connection, or an orchestrator's store did; both recover by
 *    themselves. A check may answer `degraded` too.
 * 4. `stopped`: closed or stopped on purpose (a store `closed` without an error, an orchestrator
 *    `stopped`): nothing is wrong, and nothing will recover by itself.
 * 5. `failed`: a store closed by a fatal error, an orchestrator `halted`, a check that answered
 *    `failed` or `false`, threw, or did not answer within its timeout.
 *
 * The aggregate is the worst state of its components (not the last one to change, as in the Go
 * original).
 */
export type HealthState = 'ok' | 'starting' | 'degraded' | 'stopped' | 'failed'

const ORDER: readonly HealthState[] = ['ok', 'starting', 'degraded', 'stopped', 'failed']

/** What kind of component a {@link ComponentHealth} describes. */
export type ComponentKind = 'store' | 'datasync' | 'check'

/** One component's health in a {@link HealthReport}. */
export interface ComponentHealth {
  readonly kind: ComponentKind
  readonly state: HealthState
  /**
   * The component's own word for its state: a store's `connecting`, `ready`, `degraded` or
   * `closed`; an orchestrator's `idle` ... `halted`; a check's `ok`, `degraded`, `failed` or
   * `timeout`; `pending` before the first answer.
   */
  readonly status: string
  /** Why it is not ok, when there is a reason. */
  readonly error?: string
  /** Whether it counts for readiness, liveness and the aggregate state. */
  readonly critical: boolean
}

/**
 * The health of everything registered, as the probes serve it (JSON):
 *
 * ```json
 * { "state": "degraded", "ready": false, "live": true,
 *   "components": { "etcd": { "kind": "store", "state": "degraded", "status": "degraded",
 *                             "error": "etcd: connection refused", "critical": true } } }
 * ```
 */
export interface HealthReport {
  /** The worst state of the critical components; `ok` when there is none. */
  readonly state: HealthState
  /** Every critical component is `ok`: stores ready, orchestrators in sync, checks ok. */
  readonly ready: boolean
  /** No critical component `failed`: nothing halted, closed by an error, failing or hanging. */
  readonly live: boolean
  /** Each component by the name it was added with, in the order added. */
  readonly components: Readonly<Record<string, ComponentHealth>>
}

/** A store's status as a health state. */
export function storeHealth(status: StoreStatus): HealthState {
  switch (status.state) {
    case 'ready':
      return 'ok'
    case 'connecting':
      return 'starting'
    case 'degraded':
      return 'degraded'
    case 'closed':
      return status.error === undefined ? 'stopped' : 'failed'
  }
}

/** An orchestrator's status as a health state. */
export function syncHealth(status: SyncStatus): HealthState {
  switch (status.state) {
    case 'in-sync':
      return 'ok'
    case 'idle':
    case 'connecting':
    case 'resyncing':
      return 'starting'
    case 'degraded':
      return 'degraded'
    case 'restored':
      // Consumers hold a snapshot saved by an earlier run; the store has not answered yet.
      return 'degraded'
    case 'stopped':
      return 'stopped'
    case 'halted':
      return 'failed'
  }
}

/** The word a component says before its first answer. */
export const PENDING = 'pending'

/**
 * The report of components named `names` in states `states` (same order): the worst of the
 * critical components decides; none is ok.
 */
export function aggregate(
  names: readonly string[],
  states: readonly ComponentHealth[],
): HealthReport {
  const entries: [string, ComponentHealth][] = []
  let worst = 0
  let ready = true
  let live = true
  names.forEach((name, index) => {
    const health = states[index]
    if (health === undefined) return
    entries.push([name, health])
    if (!health.critical) return
    worst = Math.max(worst, ORDER.indexOf(health.state))
    if (health.state !== 'ok') ready = false
    if (health.state === 'failed') live = false
  })
  return {
    state: ORDER[worst] ?? 'failed',
    ready,
    live,
    components: Object.fromEntries(entries),
  }
}

/** Whether some component has not answered yet. */
export function isPending(report: HealthReport): boolean {
  return Object.values(report.components).some((component) => component.status === PENDING)
}

/** Whether two states of a component say the same. */
export function sameComponent(a: ComponentHealth, b: ComponentHealth): boolean {
  return (
    a.kind === b.kind &&
    a.state === b.state &&
    a.status === b.status &&
    a.error === b.error &&
    a.critical === b.critical
  )
}

/** Whether two reports say the same. */
export function sameReport(a: HealthReport, b: HealthReport): boolean {
  const names = Object.keys(a.components)
  if (a.state !== b.state || a.ready !== b.ready || a.live !== b.live) return false
  if (names.length !== Object.keys(b.components).length) return false
  return names.every((name) => {
    const x = a.components[name]
    const y = b.components[name]
    return x !== undefined && y !== undefined && sameComponent(x, y)
  })
}
