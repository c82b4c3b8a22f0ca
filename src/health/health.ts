import {
  BehaviorSubject,
  asyncScheduler,
  catchError,
  combineLatest,
  defaultIfEmpty,
  defer,
  distinctUntilChanged,
  exhaustMap,
  from,
  isObservable,
  lastValueFrom,
  map,
  of,
  shareReplay,
  startWith,
  switchMap,
  take,
  takeUntil,
  takeWhile,
  timeout,
  timer,
  type Observable,
  type SchedulerLike,
} from 'rxjs'
import { toMillis, type Duration } from '../core/duration.js'
import { describe } from '../core/errors.js'
import type { StoreStatus } from '../core/store.js'
import type { SyncStatus } from '../sync/types.js'
import {
  PENDING,
  aggregate,
  isPending,
  sameComponent,
  sameReport,
  storeHealth,
  syncHealth,
  type ComponentHealth,
  type HealthReport,
  type HealthState,
} from './report.js'

export type { ComponentHealth, ComponentKind, HealthReport, HealthState } from './report.js'

/**
 * What a check answers: a state (`'ok'`, `'degraded'`, `'failed'`), a boolean (true is ok), or
 * a state with the reason to show.
 */
export type CheckResult =
  | 'ok'
  | 'degraded'
  | 'failed'
  | boolean
  | { readonly state: 'ok' | 'degraded' | 'failed'; readonly error?: string }

/**
 * A health check of the application's own: it returns its answer, a Promise of it, or an
 * Observable whose first value is the answer (unsubscribed after it, or at the timeout). A throw,
 * a rejection or an error is `failed` with its message.
 */
export type HealthCheck = () => Observable<CheckResult> | PromiseLike<CheckResult> | CheckResult

/** Options of a store or orchestrator added to a {@link Health}. */
export interface ComponentOptions {
  /**
   * Whether the component counts for readiness, liveness and the aggregate state. A non-critical
   * component is still listed in the report (the Go probe's "non-fatal plugins").
   *
   * @default true
   */
  readonly critical?: boolean
}

/** Options of {@link Health.addCheck}. */
export interface CheckOptions extends ComponentOptions {
  /** How long the check may take before it counts as `failed` (status `timeout`). @default the Health's checkTimeout */
  readonly timeout?: Duration
  /** How often the check runs while the health is observed. @default the Health's checkInterval */
  readonly interval?: Duration
}

/** Options of {@link createHealth}. */
export interface HealthOptions {
  /** The default timeout of every check. @default '5s' */
  readonly checkTimeout?: Duration
  /** The default interval of every check. @default '10s' */
  readonly checkInterval?: Duration
  /** Where check timers and timeouts run. @default asyncScheduler */
  readonly scheduler?: SchedulerLike
}

/**
 * Anything with a store's status stream: every `KvStore`. A combined store (`createRoutedStore`,
 * `createLayeredStore`) also lists its `sources`.
 */
export interface StoreLike {
  readonly status$: Observable<StoreStatus>
  /** The sources of a combined store, each reported as a component of its own. */
  readonly sources?: readonly {
    readonly name: string
    readonly status$: Observable<StoreStatus>
  }[]
}

/** Anything with an orchestrator's status stream: every `Datasync`. */
export interface DatasyncLike {
  readonly status$: Observable<SyncStatus>
}

/** The health of stores, orchestrators and checks, aggregated: the worst one wins. */
export interface Health {
  /**
   * Adds a store; its `status$` is followed while the health is observed. Each source of a
   * combined store is added too, as a component named `<name>/<source>` with the same options:
   * the report says which source is down.
   *
   * @throws TypeError when the name is empty or already taken.
   */
  addStore(name: string, store: StoreLike, options?: ComponentOptions): Health
  /**
   * Adds an orchestrator (`createDatasync`); its `status$` is followed while the health is
   * observed.
   *
   * @throws TypeError when the name is empty or already taken.
   */
  addDatasync(name: string, datasync: DatasyncLike, options?: ComponentOptions): Health
  /**
   * Adds a check, run at once and then every `interval` while the health is observed, each run
   * bounded by `timeout`.
   *
   * @throws TypeError when the name is empty or already taken.
   */
  addCheck(name: string, check: HealthCheck, options?: CheckOptions): Health
  /**
   * The report, again on every change, while subscribed: subscribing follows every component
   * (stores' and orchestrators' status, checks on their interval); the last subscriber leaving
   * stops it. Subscribers share one run and get the latest report at once. Adding a component
   * restarts the run (checks run again).
   *
   * ```
   * store:    connecting--ready---------degraded----ready---
   * report$:  starting----ok------------degraded----ok------
   * ```
   */
  readonly report$: Observable<HealthReport>
  /**
   * One report, once every check has answered (or timed out) and every stream has said its
   * state, or after the longest check timeout with what is known then.
   */
  report(): Promise<HealthReport>
}

interface Component {
  readonly name: string
  readonly critical: boolean
  readonly state$: Observable<ComponentHealth>
  /** The longest a first answer may take, for {@link Health.report}. */
  readonly settleMs: number
}

/**
 * Creates an empty {@link Health}: add stores, orchestrators and checks, then observe
 * `report$` (or serve it over HTTP with `serveHealth`).
 *
 * ```
 * etcd store:   ready------degraded-----------ready--
 * datasync:     in-sync----degraded-----------in-sync
 * check 'db':   ok---------ok-------(timeout)-ok-----
 * report$:      ok---------degraded--failed----ok----   (worst wins)
 * ```
 *
 * @example
 * ```ts
 * import { createDatasync, createMemoryStore } from 'rx-datasync'
 * import { createHealth } from 'rx-datasync/health'
 * const store = createMemoryStore()
 * const sync = createDatasync(store)
 * const health = createHealth({ checkTimeout: '2s' })
 *   .addStore('memory', store)
 *   .addDatasync('sync', sync)
 *   .addCheck('disk', async () => true)
 * sync.start()
 * console.log((await health.report()).ready)
 * ```
 */
export function createHealth(options: HealthOptions = {}): Health {
  const scheduler = options.scheduler ?? asyncScheduler
  const defaultTimeoutMs = toMillis(options.checkTimeout ?? '5s', 'checkTimeout')
  const defaultIntervalMs = toMillis(options.checkInterval ?? '10s', 'checkInterval')
  const components = new BehaviorSubject<readonly Component[]>([])

  /** Adds components at once (one restart of the run), or none when a name is wrong. */
  const add = (...added: Component[]): void => {
    const taken = new Set(components.value.map((c) => c.name))
    for (const component of added) {
      if (typeof component.name !== 'string' || component.name === '') {
        throw new TypeError(
          `health: expected a non-empty component name, got ${JSON.stringify(component.name)}`,
        )
      }
      if (taken.has(component.name)) {
        throw new TypeError(`health: a component named '${component.name}' is already added`)
      }
      taken.add(component.name)
    }
    components.next([...components.value, ...added])
  }

  const report$ = components.pipe(
    switchMap((list) =>
      list.length === 0
        ? of(aggregate([], []))
        : combineLatest(list.map((component) => component.state$)).pipe(
            map((states) =>
              aggregate(
                list.map((component) => component.name),
                states,
              ),
            ),
          ),
    ),
    distinctUntilChanged(sameReport),
    shareReplay({ bufferSize: 1, refCount: true }),
  )

  const health: Health = {
    addStore(name, store, componentOptions = {}) {
      const critical = componentOptions.critical ?? true
      const parts = [
        { name, status$: store.status$ },
        ...(store.sources ?? []).map((source) => ({
          name: `${name}/${source.name}`,
          status$: source.status$,
        })),
      ]
      add(
        ...parts.map((part) => ({
          name: part.name,
          critical,
          settleMs: defaultTimeoutMs,
          state$: followStatus(part.status$, 'store', critical, storeHealth),
        })),
      )
      return health
    },
    addDatasync(name, datasync, componentOptions = {}) {
      const critical = componentOptions.critical ?? true
      add({
        name,
        critical,
        settleMs: defaultTimeoutMs,
        state$: followStatus(datasync.status$, 'datasync', critical, syncHealth),
      })
      return health
    },
    addCheck(name, check, checkOptions = {}) {
      if (typeof check !== 'function') {
        throw new TypeError(`health: check '${name}': expected a function, got ${typeof check}`)
      }
      const critical = checkOptions.critical ?? true
      const timeoutMs =
        checkOptions.timeout === undefined
          ? defaultTimeoutMs
          : toMillis(checkOptions.timeout, `check '${name}': timeout`)
      const intervalMs =
        checkOptions.interval === undefined
          ? defaultIntervalMs
          : toMillis(checkOptions.interval, `check '${name}': interval`)
      add({
        name,
        critical,
        settleMs: timeoutMs,
        state$: runCheck(check, { critical, timeoutMs, intervalMs, scheduler }),
      })
      return health
    },
    report$,
    report() {
      const settleMs = Math.max(0, ...components.value.map((c) => c.settleMs))
      return lastValueFrom(
        report$.pipe(
          takeWhile((report) => isPending(report), true),
          takeUntil(timer(settleMs, scheduler)),
        ),
      )
    },
  }
  return health
}

/** Follows a status stream, starting `pending` until it says something. */
function followStatus<S extends { readonly state: string; readonly error?: Error }>(
  status$: Observable<S>,
  kind: 'store' | 'datasync',
  critical: boolean,
  toState: (status: S) => HealthState,
): Observable<ComponentHealth> {
  return defer(() => status$).pipe(
    map((status): ComponentHealth => {
      const state = toState(status)
      return status.error === undefined
        ? { kind, state, status: status.state, critical }
        : { kind, state, status: status.state, error: status.error.message, critical }
    }),
    catchError((error: unknown) =>
      of<ComponentHealth>({
        kind,
        state: 'failed',
        status: 'error',
        error: `its status stream failed: ${describe(error)}`,
        critical,
      }),
    ),
    startWith<ComponentHealth>({ kind, state: 'starting', status: PENDING, critical }),
  )
}

interface CheckSettings {
  readonly critical: boolean
  readonly timeoutMs: number
  readonly intervalMs: number
  readonly scheduler: SchedulerLike
}

/** Runs a check at once and then every interval; each run ends at its answer or its timeout. */
function runCheck(check: HealthCheck, settings: CheckSettings): Observable<ComponentHealth> {
  const { critical, timeoutMs, intervalMs, scheduler } = settings
  const result = (
    state: HealthState,
    status: string,
    error: string | undefined,
  ): ComponentHealth =>
    error === undefined
      ? { kind: 'check', state, status, critical }
      : { kind: 'check', state, status, error, critical }

  const once = defer(() => {
    const answer = check()
    return isObservable(answer) || isPromiseLike(answer) ? from(answer) : of(answer)
  }).pipe(
    take(1),
    map((answer) => checkHealth(answer, result)),
    timeout({
      first: timeoutMs,
      scheduler,
      with: () => of(result('failed', 'timeout', `no answer within ${timeoutMs} ms`)),
    }),
    defaultIfEmpty(result('failed', 'failed', 'the check completed without an answer')),
    catchError((error: unknown) => of(result('failed', 'failed', describe(error)))),
  )

  return timer(0, intervalMs, scheduler).pipe(
    exhaustMap(() => once),
    startWith(result('starting', PENDING, undefined)),
    distinctUntilChanged(sameComponent),
  )
}

function checkHealth(
  answer: CheckResult,
  result: (state: HealthState, status: string, error: string | undefined) => ComponentHealth,
): ComponentHealth {
  if (answer === true) return result('ok', 'ok', undefined)
  if (answer === false) return result('failed', 'failed', undefined)
  if (answer === 'ok' || answer === 'degraded' || answer === 'failed') {
    return result(answer, answer, undefined)
  }
  if (
    typeof answer === 'object' &&
    (answer.state === 'ok' || answer.state === 'degraded' || answer.state === 'failed')
  ) {
    return result(answer.state, answer.state, answer.error)
  }
  return result(
    'failed',
    'failed',
    `expected 'ok', 'degraded', 'failed', a boolean or { state }, got ${describe(answer)}`,
  )
}

function isPromiseLike(value: unknown): value is PromiseLike<CheckResult> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  )
}
