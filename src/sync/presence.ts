import { BehaviorSubject, Observable, Subject } from 'rxjs'

/**
 * A consumer's events and who listens to them. `events$` counts its subscribers: the orchestrator
 * waits for a consumer only while someone listens (`listening`), and when the last subscriber
 * leaves, `onLeave` runs (the consumer cancels what it held), then `listening$` says `false` and
 * `away$` emits. `close()` ends it all for good.
 */
export class Presence<E> {
  /** The events (a plain Subject: `emit` is the only producer). */
  readonly #events = new Subject<E>()
  readonly #listening = new BehaviorSubject<boolean>(false)
  /** Emits when the consumer closes or loses its last subscriber: a round step ends at once. */
  readonly #away = new Subject<void>()
  readonly #onLeave: () => void
  #subscribers = 0
  #closed = false

  readonly events$: Observable<E> = new Observable<E>((subscriber) => {
    const subscription = this.#events.subscribe(subscriber)
    if (++this.#subscribers === 1 && !this.#closed) this.#listening.next(true)
    return () => {
      subscription.unsubscribe()
      if (--this.#subscribers === 0 && !this.#closed) {
        this.#onLeave()
        this.#listening.next(false)
        this.#away.next()
      }
    }
  })
  /** Whether `events$` has a subscriber, replayed, then each change. */
  readonly listening$: Observable<boolean> = this.#listening.asObservable()
  readonly away$: Observable<void> = this.#away.asObservable()

  constructor(onLeave: () => void) {
    this.#onLeave = onLeave
  }

  get listening(): boolean {
    return this.#listening.value
  }

  get closed(): boolean {
    return this.#closed
  }

  emit(event: E): void {
    this.#events.next(event)
  }

  /** Ends for good: `away$` emits and every stream completes. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#away.next()
    this.#away.complete()
    this.#listening.complete()
    this.#events.complete()
  }
}
