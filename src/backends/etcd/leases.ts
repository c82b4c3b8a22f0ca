import {
  EMPTY,
  Observable,
  catchError,
  concatMap,
  defer,
  exhaustMap,
  from,
  map,
  of,
  reduce,
  retry,
  shareReplay,
  tap,
  throwError,
  timer,
  type SchedulerLike,
  type Subscription,
} from 'rxjs'
import type { Etcd3, ILeaseKeepAliveResponse } from 'etcd3'
import { EtcdLeaseInvalidError } from './etcd3.js'
import type { Duration } from '../../core/duration.js'
import { DatasyncError, isRetryable } from '../../core/errors.js'
import { ttlMillis } from './checks.js'
import { NAME } from './errors.js'

/** How the lease code reaches the server: every call wrapped once at the store's edge. */
export interface LeaseContext {
  readonly client: Etcd3
  readonly scheduler: SchedulerLike
  /** TTL leases granted within this long of each other's grant are shared (see {@link Leases}). */
  readonly windowMs: number
  /** The session lease's TTL, whole seconds. */
  readonly sessionTtlSeconds: number
  call<T>(what: string, run: () => Promise<T>): Observable<T>
}

/** How a write notes the leases it uses: `track(id$)` is `id$`, noting the id it emits. */
export type TrackLease = (id$: Observable<string | undefined>) => Observable<string | undefined>

interface Granted {
  readonly id$: Observable<string>
  /** The lease's id once granted. */
  id?: string
}

interface TtlLease extends Granted {
  readonly requestedAt: number
}

interface SessionLease extends Granted {
  keepAlive?: Subscription
}

/**
 * The leases behind TTLs and session keys.
 *
 * TTL keys share leases: a put with `ttl` T uses a lease of `ceil(T + window)` whole seconds,
 * granted by the first such put and reused by every later put of the same lease length within
 * `window` of the grant request. So a burst of puts with one TTL costs one lease, not one per
 * put, and a key is never deleted early: it lives at least T and at most T + window (plus the
 * rounding up to whole seconds; etcd also raises a TTL to its minimum, and a leader change
 * renews every lease). A window of 0 grants a lease per put.
 *
 * The session lease (for keys that live as long as the client) is granted on first use with the
 * session TTL and kept alive every third of it until `close()`, which revokes it, so its keys go
 * at once. If the client cannot reach etcd for a whole TTL, etcd expires the lease and deletes
 * its keys; the next session put then grants a new lease (keys already gone are not re-put).
 */
export class Leases {
  private readonly byLength = new Map<number, TtlLease>()
  private session: SessionLease | undefined

  constructor(private readonly context: LeaseContext) {}

  /**
   * The lease of a put: the session's, one for its TTL, or none (undefined).
   * @throws TypeError for both a TTL and `session`, or a TTL that is not a positive duration.
   */
  forPut(
    ttl: Duration | undefined,
    session: boolean | undefined,
    what: string,
  ): Observable<string | undefined> {
    if (session === true && ttl !== undefined) {
      throw new TypeError(`${NAME} ${what}: give either ttl or session, not both`)
    }
    if (session === true) return this.forSession()
    if (ttl !== undefined) return this.forTtl(ttlMillis(what, ttl))
    return of(undefined)
  }

  /** The lease for a put with a TTL of `ttlMs`. */
  forTtl(ttlMs: number): Observable<string> {
    return defer(() => {
      const { windowMs, scheduler } = this.context
      const seconds = Math.max(1, Math.ceil((ttlMs + windowMs) / 1000))
      const now = scheduler.now()
      const existing = this.byLength.get(seconds)
      if (existing !== undefined && windowMs > 0 && now - existing.requestedAt <= windowMs) {
        return existing.id$
      }
      const lease: TtlLease = {
        requestedAt: now,
        id$: this.grant(seconds).pipe(
          tap((id) => {
            lease.id = id
          }),
          catchError((error: unknown) => {
            if (this.byLength.get(seconds) === lease) this.byLength.delete(seconds)
            return throwError(() => error)
          }),
          shareReplay({ bufferSize: 1, refCount: false }),
        ),
      }
      this.byLength.set(seconds, lease)
      return lease.id$
    })
  }

  /** The session lease, granted on first use and kept alive until {@link revoke}. */
  forSession(): Observable<string> {
    return defer(() => {
      if (this.session !== undefined) return this.session.id$
      const seconds = this.context.sessionTtlSeconds
      const session: SessionLease = {
        id$: this.grant(seconds).pipe(
          tap((id) => {
            session.id = id
            session.keepAlive = this.keepAlive(id, seconds, () => {
              if (this.session === session) this.session = undefined
            })
          }),
          catchError((error: unknown) => {
            if (this.session === session) this.session = undefined
            return throwError(() => error)
          }),
          shareReplay({ bufferSize: 1, refCount: false }),
        ),
      }
      this.session = session
      return session.id$
    })
  }

  /** Forgets a lease etcd no longer has, so the next put grants a new one. */
  invalidate(id: string): void {
    for (const [seconds, lease] of this.byLength) {
      if (lease.id === id) this.byLength.delete(seconds)
    }
    if (this.session?.id === id) {
      this.session.keepAlive?.unsubscribe()
      this.session = undefined
    }
  }

  /**
   * Runs a write that may use leases. `track` notes the leases it used: when etcd no longer has
   * one (expired early, revoked), it is forgotten and the write tried once more with a fresh lease.
   */
  retryWhenLost<T>(write: (track: TrackLease) => Observable<T>): Observable<T> {
    return defer(() => {
      const used = new Set<string>()
      const track: TrackLease = (id$) =>
        id$.pipe(
          tap((id) => {
            if (id !== undefined) used.add(id)
          }),
        )
      return write(track).pipe(
        catchError((error: unknown) => {
          if (isLeaseGone(error)) for (const id of used) this.invalidate(id)
          return throwError(() => error)
        }),
      )
    }).pipe(
      retry({
        count: 1,
        delay: (error: unknown) => (isLeaseGone(error) ? of(0) : throwError(() => error)),
      }),
    )
  }

  /**
   * Stops the session's keepalives and revokes its lease (its keys are deleted at once), through
   * `call`: the store closing revokes straight through the client, its edge refusing already.
   * Completes without error whatever happens: closing must not fail on an unreachable server.
   */
  revoke(call: LeaseContext['call']): Observable<void> {
    return defer(() => {
      const session = this.session
      this.session = undefined
      this.byLength.clear()
      if (session === undefined) return EMPTY
      session.keepAlive?.unsubscribe()
      // Only a lease already granted (or being granted) is revoked; nothing is granted here.
      return session.id$.pipe(
        catchError(() => EMPTY),
        concatMap((id) =>
          call('revoke the session lease', () =>
            this.context.client.leaseClient.leaseRevoke({ ID: id }),
          ).pipe(catchError(() => EMPTY)),
        ),
        map(() => undefined),
      )
    })
  }

  private grant(seconds: number): Observable<string> {
    return this.context
      .call(`grant a ${seconds} s lease`, () =>
        this.context.client.leaseClient.leaseGrant({ TTL: seconds }),
      )
      .pipe(
        map((response) => {
          if (response.error) {
            throw new DatasyncError(
              'internal',
              `etcd refused a ${seconds} s lease: ${response.error}`,
            )
          }
          return response.ID
        }),
      )
  }

  /** Keeps the lease alive every third of its TTL; `lost` runs when etcd says it expired. */
  private keepAlive(id: string, seconds: number, lost: () => void): Subscription {
    const every = Math.max(1, Math.floor((seconds * 1000) / 3))
    const subscription = timer(every, every, this.context.scheduler)
      .pipe(
        exhaustMap(() =>
          this.context
            .call('keep the session lease alive', () => keepAliveOnce(this.context.client, id))
            .pipe(
              // A missed keepalive is tried again at the next tick (the TTL leaves room for two);
              // after an error retrying cannot fix (the store failed or closed), it stops.
              catchError((error: unknown) =>
                isRetryable(error) ? EMPTY : of<Pick<ILeaseKeepAliveResponse, 'TTL'>>({ TTL: '0' }),
              ),
            ),
        ),
      )
      .subscribe((response) => {
        if (BigInt(response.TTL || '0') <= 0n) {
          lost()
          subscription.unsubscribe()
        }
      })
    return subscription
  }
}

/** One keepalive on a short-lived LeaseKeepAlive stream (as etcd3's `keepaliveOnce`). */
function keepAliveOnce(client: Etcd3, id: string): Promise<ILeaseKeepAliveResponse> {
  return client.leaseClient.leaseKeepAlive().then(
    (stream) =>
      new Promise<ILeaseKeepAliveResponse>((resolve, reject) => {
        stream.on('data', (response: ILeaseKeepAliveResponse) => {
          stream.end()
          resolve(response)
        })
        stream.on('error', (error: Error) => {
          reject(error)
        })
        stream.on('end', () => {
          reject(new EtcdLeaseInvalidError(id))
        })
        stream.write({ ID: id })
      }),
  )
}

/** Emits every lease id once all are there (several TTLs in one transaction). */
export function allLeases(
  sources: readonly Observable<string | undefined>[],
): Observable<(string | undefined)[]> {
  if (sources.length === 0) return of([])
  return from(sources).pipe(
    concatMap((source) => source),
    reduce((ids: (string | undefined)[], id) => [...ids, id], []),
  )
}

/** Whether a failed put met a lease etcd no longer has. */
export function isLeaseGone(error: unknown): boolean {
  return error instanceof DatasyncError && error.cause instanceof EtcdLeaseInvalidError
}
