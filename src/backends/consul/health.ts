import { BehaviorSubject, Observable } from 'rxjs'
import type { DatasyncError } from '../../core/errors.js'
import type { StoreStatus } from '../../core/store.js'
import { CONNECTING, READY, statusStream } from '../../internal/status.js'

/** One reporter of the connection's health: a watch, the status check, the broker calls. */
export interface HealthSource {
  /** It got an answer from the agent. */
  readonly ok: () => void
  /** It failed with a retryable error (and will try again, or its caller may). */
  readonly failed: (error: DatasyncError) => void
  /** It stopped reporting (a watch ended). */
  readonly ended: () => void
}

/**
 * The store's status from what its sources report: `connecting` until the first answer, `degraded`
 * (with the latest error) while any source is failing, `ready` when none is, `closed` at the end.
 */
export class Health {
  private readonly subject = new BehaviorSubject<StoreStatus>(CONNECTING)
  private readonly failing = new Map<object, DatasyncError>()
  private done = false

  /** The current status, replayed to each subscriber; completes after `closed`. */
  readonly status$: Observable<StoreStatus> = statusStream(this.subject, () => this.done)

  get current(): StoreStatus {
    return this.subject.value
  }

  /** A new reporter. */
  source(): HealthSource {
    const token = {}
    return {
      ok: () => {
        this.failing.delete(token)
        this.publish()
      },
      failed: (error) => {
        this.failing.delete(token)
        this.failing.set(token, error)
        this.publish()
      },
      ended: () => {
        // A source that ends proves nothing about the connection: the status stays as it is
        // until another source reports.
        this.failing.delete(token)
      },
    }
  }

  /** Ends the status with `closed` (carrying the fatal error, if one closed the store). */
  close(error?: DatasyncError): void {
    if (this.done) return
    this.done = true
    this.failing.clear()
    this.subject.next(error === undefined ? { state: 'closed' } : { state: 'closed', error })
    this.subject.complete()
  }

  private publish(): void {
    if (this.done) return
    const current = this.subject.value
    const latest = [...this.failing.values()].at(-1)
    const next: StoreStatus = latest === undefined ? READY : { state: 'degraded', error: latest }
    // The same failure again (a retry that failed alike) is no news.
    const same =
      current.state === next.state &&
      current.error?.code === next.error?.code &&
      current.error?.message === next.error?.message
    if (!same) this.subject.next(next)
  }
}
