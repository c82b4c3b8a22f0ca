import { BehaviorSubject } from 'rxjs'
import type { DatasyncError } from '../../core/errors.js'
import type { StoreStatus } from '../../core/store.js'
import { CONNECTING, READY, statusStream } from '../../internal/status.js'

/**
 * The store's health from the health of its parts (the broker connection and each watch
 * session): degraded while any part is down, ready when some part is up and none is down,
 * connecting before anything was up.
 */
export class Health {
  private readonly up = new Set<string>()
  private readonly down = new Map<string, DatasyncError | undefined>()
  private readonly subject = new BehaviorSubject<StoreStatus>(CONNECTING)
  private closed = false

  /** The status stream: replays the current state, completes after `closed`. */
  readonly status$ = statusStream(this.subject, () => this.closed)

  markUp(part: string): void {
    this.down.delete(part)
    this.up.add(part)
    this.publish()
  }

  markDown(part: string, error: DatasyncError | undefined): void {
    this.up.delete(part)
    this.down.set(part, error)
    this.publish()
  }

  /** A part went away (a watch was unsubscribed): it no longer counts either way. */
  remove(part: string): void {
    this.up.delete(part)
    this.down.delete(part)
    this.publish()
  }

  close(error?: DatasyncError): void {
    if (this.closed) return
    this.closed = true
    this.subject.next(error ? { state: 'closed', error } : { state: 'closed' })
    this.subject.complete()
  }

  private publish(): void {
    if (this.closed) return
    let next: StoreStatus | undefined
    if (this.down.size > 0) {
      const error = [...this.down.values()].reverse().find((e) => e !== undefined)
      next = error ? { state: 'degraded', error } : { state: 'degraded' }
    } else if (this.up.size > 0) {
      next = READY
    }
    const current = this.subject.value
    // The last degraded part went away: nothing is known to be up.
    if (next === undefined && current.state === 'degraded') next = CONNECTING
    if (next && (next.state !== current.state || next.error !== current.error))
      this.subject.next(next)
  }
}
