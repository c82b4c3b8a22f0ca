import {
  EMPTY,
  catchError,
  concatMap,
  defer,
  exhaustMap,
  ignoreElements,
  map,
  of,
  tap,
  timer,
  type Observable,
  type SchedulerLike,
} from 'rxjs'
import type { Etcd3, IStatusResponse } from 'etcd3'
import { UnavailableError } from '../../core/errors.js'
import { revision, type Revision } from '../../core/revision.js'
import type { HealthPart } from '../../internal/store-health.js'
import { NAME } from './errors.js'
import type { Limiter } from './limiter.js'

/** What the store's maintenance (the status probe, compaction) needs from it. */
export interface MaintenanceContext {
  readonly client: Etcd3
  readonly scheduler: SchedulerLike
  /** The writes' bound: a compaction takes a slot like any write. */
  readonly writes: Limiter
  /** A raw call through the store's edge (bounded, mapped, refused once the store is closed). */
  call<T>(what: string, run: () => Promise<T>): Observable<T>
}

/** What the status probe needs besides. */
export interface ProbeContext {
  readonly scheduler: SchedulerLike
  readonly intervalMs: number
  /**
   * One status request, bounded by the dial timeout and refused once the store is closed, its
   * error not yet mapped: the probe reports its answers itself (an answer may say "no leader").
   */
  status(): Observable<IStatusResponse>
  /** The part the probe reports on: the broker's (a status request is a broker call). */
  readonly part: HealthPart | undefined
  /**
   * Maps a failed request: a store-wide failure closes the store, a connection fault marks the
   * part down.
   */
  fail(raw: unknown, what: string): void
}

/**
 * The status probe: every `intervalMs` (from subscription on) one member's status. An answer with
 * a raft leader marks the part up; an answer without one, or a connection fault, marks it down.
 * Emits nothing and never errors.
 *
 * ```
 * probe$:   s(ok)--------s(no leader)--------s(x: unreachable)--------s(ok)--
 * part:     up-----------down----------------down---------------------up-----
 * ```
 */
export function probe$(context: ProbeContext): Observable<never> {
  return timer(0, context.intervalMs, context.scheduler).pipe(
    exhaustMap(() =>
      context.status().pipe(
        tap((answer) => {
          if (answer.leader !== '0') context.part?.up()
          else {
            context.part?.down(
              new UnavailableError(
                NAME,
                `the member at ${answer.header.member_id} has no raft leader`,
              ),
            )
          }
        }),
        catchError((raw: unknown) => {
          context.fail(raw, 'status probe')
          return EMPTY
        }),
      ),
    ),
    ignoreElements(),
  )
}

/**
 * Compacts etcd's history up to `target` (the current revision when undefined), waiting until it
 * is physically done, in a write slot. Emits the revision compacted to.
 */
export function compactTo(
  context: MaintenanceContext,
  target: Revision | undefined,
): Observable<{ readonly revision: Revision }> {
  return (
    target === undefined
      ? context
          .call('read the current revision', () => context.client.maintenance.status())
          .pipe(map((answer) => revision(answer.header.revision)))
      : of(target)
  ).pipe(
    concatMap((to) =>
      context.writes
        .run(
          context.call(`compact to revision ${to}`, () =>
            context.client.kv.compact({ revision: to.toString(), physical: true }),
          ),
        )
        .pipe(map(() => ({ revision: to }))),
    ),
  )
}

/**
 * Compacts periodically: every `everyMs`, to the revision the previous tick saw, so one period of
 * history is kept. Failures are left to the next tick. Emits the revisions compacted to.
 *
 * ```
 * ticks:          t(R1)--------t(R2)--------t(R3)--
 * autoCompact$:   -------------c(R1)--------c(R2)--
 * ```
 */
export function autoCompact$(
  context: MaintenanceContext,
  everyMs: number,
): Observable<{ readonly revision: Revision }> {
  if (everyMs <= 0) return EMPTY
  return defer(() => {
    let previous: Revision | undefined
    return timer(everyMs, everyMs, context.scheduler).pipe(
      exhaustMap(() =>
        context
          .call('read the current revision', () => context.client.maintenance.status())
          .pipe(
            concatMap((answer) => {
              const target = previous
              previous = revision(answer.header.revision)
              return target === undefined ? EMPTY : compactTo(context, target)
            }),
            catchError(() => EMPTY),
          ),
      ),
    )
  })
}
