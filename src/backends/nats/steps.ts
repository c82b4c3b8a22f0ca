import { Observable, type OperatorFunction, type Subscription } from 'rxjs'

/**
 * `concatMap` for a step that is nearly always synchronous: `step` returns the values to emit
 * now (an array, most often empty) or, rarely, an Observable to wait for. Values that arrive
 * while one is awaited queue behind it, so the output keeps the input's order as `concatMap`
 * does, but a synchronous step costs no inner subscription: a watch reads 100k messages of a
 * snapshot through it, and an inner Observable per message showed in its profile.
 *
 * ```
 * source:  --a--b------c--|
 * step:    a → [A], b → --B| (async), c → [C]
 * result:  --A-----B---C--|
 * ```
 */
export function concatSteps<T, R>(
  step: (value: T) => readonly R[] | Observable<R>,
): OperatorFunction<T, R> {
  return (source) =>
    new Observable<R>((subscriber) => {
      const queued: T[] = []
      /** The Observable step being awaited, if one is. */
      let awaited: Subscription | undefined
      let sourceDone = false

      /** Runs one step; true when it left an Observable to wait for. */
      const run = (value: T): boolean => {
        const out = step(value)
        if (Array.isArray(out)) {
          for (const item of out as readonly R[]) subscriber.next(item)
          return false
        }
        let finished = false
        let synchronous = true
        const inner = (out as Observable<R>).subscribe({
          next: (item) => {
            subscriber.next(item)
          },
          error: (error: unknown) => {
            subscriber.error(error)
          },
          complete: () => {
            finished = true
            if (synchronous) return
            awaited = undefined
            drain()
          },
        })
        synchronous = false
        if (finished) return false
        awaited = inner
        subscriber.add(inner)
        return true
      }

      const drain = () => {
        while (!subscriber.closed && queued.length > 0) {
          if (run(queued.shift() as T)) return
        }
        if (sourceDone && queued.length === 0) subscriber.complete()
      }

      subscriber.add(
        source.subscribe({
          next: (value) => {
            if (awaited === undefined) run(value)
            else queued.push(value)
          },
          error: (error: unknown) => {
            subscriber.error(error)
          },
          complete: () => {
            sourceDone = true
            if (awaited === undefined) subscriber.complete()
          },
        }),
      )
    })
}
