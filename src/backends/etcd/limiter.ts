import { Observable, type Subscription } from 'rxjs'

/**
 * Bounds how many Observables run at once: `run(source)` subscribes to `source` when a slot is
 * free and frees it when `source` completes, errors or is unsubscribed. Waiting runs start in
 * the order they were subscribed; unsubscribing a waiting run just leaves the queue.
 */
export class Limiter {
  private active = 0
  private draining = false
  private readonly waiting = new Set<() => void>()

  constructor(private readonly limit: number) {}

  run<T>(source: Observable<T>): Observable<T> {
    return new Observable<T>((subscriber) => {
      let inner: Subscription | undefined
      let holding = false
      const release = () => {
        if (!holding) return
        holding = false
        this.active--
        this.next()
      }
      const start = () => {
        this.waiting.delete(start)
        holding = true
        this.active++
        inner = source.subscribe({
          next: (value) => {
            subscriber.next(value)
          },
          error: (error: unknown) => {
            release()
            subscriber.error(error)
          },
          complete: () => {
            release()
            subscriber.complete()
          },
        })
      }
      if (this.active < this.limit) start()
      else this.waiting.add(start)
      return () => {
        this.waiting.delete(start)
        inner?.unsubscribe()
        release()
      }
    })
  }

  /** Starts waiting runs while slots are free; a loop, not recursion, when runs end at once. */
  private next(): void {
    if (this.draining) return
    this.draining = true
    try {
      while (this.active < this.limit) {
        const first = this.waiting.values().next()
        if (first.done) break
        first.value()
      }
    } finally {
      this.draining = false
    }
  }
}
