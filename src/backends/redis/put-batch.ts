import { asapScheduler } from 'rxjs'
import type { PutArgs } from './scripts.js'

/** At most this many puts go in one script call. */
const MAX_PUTS = 256

/** A batch goes out at once when its keys and values reach this many bytes. */
const MAX_BYTES = 1 << 20

/** A put waiting in the batch, with what settles its caller's promise. */
interface Queued {
  readonly args: PutArgs
  readonly resolve: () => void
  readonly reject: (error: unknown) => void
}

/**
 * Sends `puts` as one script call and resolves with each put's outcome, in order (undefined:
 * made, else the server's error); rejects when the call itself fails (every put of it failed).
 */
export type SendPuts = (puts: readonly PutArgs[]) => Promise<(Error | undefined)[]>

/**
 * Collects the plain puts a store makes in one turn of the event loop and sends them as one
 * script call (`PUTS_SCRIPT`), when the turn's synchronous code and microtasks are done (RxJS's
 * `asapScheduler`): a put alone goes out without waiting, puts made together (callers with
 * several puts in flight, each sending its next when one is answered) share one command, one
 * socket write and one script call. Each put keeps its own message, so a watch still sees each as
 * its own change event.
 *
 * The batch is the connection's order: a caller that sends any other command on the store's
 * connection calls {@link flush} first, so commands reach the server in the order they were made
 * (the batch's sequence numbers, taken when each put was queued, stay in connection order).
 */
export class PutBatch {
  readonly #send: SendPuts
  #queue: Queued[] = []
  #bytes = 0
  #scheduled = false

  constructor(send: SendPuts) {
    this.#send = send
  }

  /** Queues a put; resolves when it is made, rejects with its error. */
  put(args: PutArgs): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ args, resolve, reject })
      this.#bytes += args.prefix.length + args.value.length
      if (this.#queue.length >= MAX_PUTS || this.#bytes >= MAX_BYTES) {
        this.flush()
      } else if (!this.#scheduled) {
        this.#scheduled = true
        asapScheduler.schedule(() => {
          this.#scheduled = false
          this.flush()
        })
      }
    })
  }

  /** Sends the queued puts now (nothing when none is queued). */
  flush(): void {
    const batch = this.#queue
    if (batch.length === 0) return
    this.#queue = []
    this.#bytes = 0
    // An async function's throw is a rejection.
    const send = async () => this.#send(batch.map((item) => item.args))
    send().then(
      (outcomes) => {
        batch.forEach((item, i) => {
          const error = outcomes[i]
          if (error === undefined) item.resolve()
          else item.reject(error)
        })
      },
      (error: unknown) => {
        for (const item of batch) item.reject(error)
      },
    )
  }
}
