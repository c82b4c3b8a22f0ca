import { Observable, type BehaviorSubject } from 'rxjs'
import type { StoreStatus } from '../core/store.js'

/** The plain statuses every backend reports (frozen: shared by all stores). */
export const CONNECTING: StoreStatus = Object.freeze({ state: 'connecting' })
export const READY: StoreStatus = Object.freeze({ state: 'ready' })
export const CLOSED: StoreStatus = Object.freeze({ state: 'closed' })

/**
 * A store's `status$` over `subject`: each subscriber gets the current status, then every change.
 * Once `done()` (the subject has emitted its final status and completed), a subscriber gets that
 * final status and the completion: a completed BehaviorSubject alone would replay nothing.
 */
export function statusStream(
  subject: BehaviorSubject<StoreStatus>,
  done: () => boolean,
): Observable<StoreStatus> {
  return new Observable<StoreStatus>((subscriber) => {
    if (!done()) return subject.subscribe(subscriber)
    subscriber.next(subject.getValue())
    subscriber.complete()
    return undefined
  })
}
