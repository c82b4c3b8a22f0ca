import { Observable, type Subscriber } from 'rxjs'
import { EtcdLeaseInvalidError, isRecoverableError } from './etcd3.js'
import { isTooLarge } from './errors.js'
import type { WirePutResponse, WireTxnResponse } from './wire/decode.js'
import type { WirePutRequest } from './wire/encode.js'

/** How the writer reaches etcd: each call bounded by the operation timeout, errors raw. */
export interface WriterContext {
  /** The most operations one batch carries (etcd's `--max-txn-ops` is 128 by default). */
  readonly maxOps: number
  /** The most bytes of keys, values and per-operation framing one batch carries. */
  readonly maxBytes: number
  /** One Put call. */
  put(request: WirePutRequest): Observable<WirePutResponse>
  /** One Txn call whose success branch is `puts`, with no compare. */
  puts(requests: readonly WirePutRequest[]): Observable<WireTxnResponse>
  /** Runs another write (a delete, a transaction) as one call. */
  run<T>(write: () => Promise<T>): Observable<T>
}

/** What a queued write does once ready: one put (batched with others), or a call of its own. */
export type Work<T> =
  { readonly put: WirePutRequest; readonly key: string } | { readonly run: () => Promise<T> }

/** Protobuf framing of one put in a Txn (RequestOp, PutRequest, field tags and lengths), at most. */
const OP_OVERHEAD = 32
/**
 * A put larger than this goes alone: batching saves a call's CPU, nothing next to sending 64 KiB,
 * and a put over a member's `--max-request-bytes` is then refused by itself, once.
 */
const ALONE_BYTES = 64 * 1024

interface Job {
  /** Set once what it waits for (a lease) is there. */
  work: Work<unknown> | undefined
  /** Unsubscribed or settled: skipped. */
  gone: boolean
  /** Sent alone after a batch it was in failed for one of its puts. */
  alone: boolean
  settle(error: unknown, value?: unknown): void
}

/**
 * The store's writes, in order, one call to etcd at a time. Puts that wait together go as one
 * Txn (a success branch of puts, no compare): the first put goes at once, puts arriving while a
 * call is out join the next batch, up to {@link WriterContext.maxOps} operations and
 * {@link WriterContext.maxBytes} bytes, and never one key twice (etcd refuses a txn that writes a
 * key twice); a put over 64 KiB goes alone. gRPC's per-call CPU (about 250 µs in Node) is paid
 * once per batch, not per put.
 *
 * - Order: a write subscribed after another is applied after it (one call at a time, in queue
 *   order; a put waiting for its lease holds the writes behind it). Puts of one batch share its
 *   revision, so a watch delivers them as one revision. A put tried again by its caller (the
 *   store's retry after a lost lease) takes a new place at the end.
 * - Errors: a batch that fails for something about one of its puts (its size, its lease, a
 *   permission, etcd's limit on operations) is sent again put by put, ahead of everything else,
 *   so each caller gets its own answer; a connection fault or a timeout fails every put of the
 *   batch, as it would each of them alone.
 * - Deletes and transactions go alone, in their place in the queue.
 */
export class Writer {
  private queue: Job[] = []
  private head = 0
  private busy = false
  private scheduled = false
  private maxOps: number

  constructor(private readonly context: WriterContext) {
    this.maxOps = Math.max(1, context.maxOps)
  }

  /**
   * A write in its place in the queue: it takes its place on subscribe, waits for `ready$` (its
   * first value gives the work), and emits the call's answer (`undefined` for a put).
   */
  write<P, T>(ready$: Observable<P>, work: (prepared: P) => Work<T>): Observable<T> {
    return new Observable<T>((subscriber) => {
      const job = this.enqueue(subscriber)
      const waiting = ready$.subscribe({
        next: (prepared) => {
          if (job.work !== undefined) return
          try {
            job.work = work(prepared)
          } catch (error) {
            job.settle(error)
          }
          this.schedule()
        },
        error: (error: unknown) => {
          if (job.work !== undefined) return
          job.settle(error ?? new Error('etcd write: what it waited for failed'))
          this.schedule()
        },
        complete: () => {
          if (job.work !== undefined) return
          job.settle(new Error('etcd write: what it waited for ended without a value'))
          this.schedule()
        },
      })
      return () => {
        waiting.unsubscribe()
        this.leave(job)
      }
    })
  }

  /**
   * A write whose work is known at once (a put without a lease, a delete): as {@link write}
   * without anything to wait for, and without the allocations of waiting (a burst of puts
   * subscribes thousands of these in one go).
   */
  ready<T>(work: Work<T>): Observable<T> {
    return new Observable<T>((subscriber) => {
      const job = this.enqueue(subscriber)
      job.work = work
      this.schedule()
      return () => {
        this.leave(job)
      }
    })
  }

  /** A new job at the end of the queue, answering `subscriber`. */
  private enqueue<T>(subscriber: Subscriber<T>): Job {
    const job: Job = {
      work: undefined,
      gone: false,
      alone: false,
      settle: (error, value) => {
        if (job.gone) return
        job.gone = true
        if (error === undefined) {
          subscriber.next(value as T)
          subscriber.complete()
        } else {
          subscriber.error(error)
        }
      },
    }
    this.queue.push(job)
    return job
  }

  /** An unsubscribed job: skipped if still queued (a batch already sent is not called back). */
  private leave(job: Job): void {
    if (job.gone) return
    job.gone = true
    this.schedule()
  }

  /** Pumps on the next microtask, so that puts subscribed together leave together. */
  private schedule(): void {
    if (this.scheduled || this.busy) return
    this.scheduled = true
    queueMicrotask(() => {
      this.scheduled = false
      this.pump()
    })
  }

  private pump(): void {
    if (this.busy) return
    const job = this.first()
    if (job?.work === undefined) return
    if ('run' in job.work) {
      this.head++
      this.send(this.context.run(job.work.run), [job])
      return
    }
    const batch = this.batch()
    if (batch.length === 1) {
      this.send(this.context.put(putOf(job)), batch)
      return
    }
    this.send(this.context.puts(batch.map(putOf)), batch)
  }

  /** The first job not gone (gone ones are dropped), or undefined. */
  private first(): Job | undefined {
    while (this.head < this.queue.length) {
      const job = this.queue[this.head]
      if (job !== undefined && !job.gone) {
        // Settled jobs before the head are let go now and then, not one shift per job.
        if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
          this.queue = this.queue.slice(this.head)
          this.head = 0
        }
        return this.queue[this.head]
      }
      this.head++
    }
    this.queue = []
    this.head = 0
    return undefined
  }

  /** Takes the ready puts at the head of the queue that fit in one batch. */
  private batch(): Job[] {
    const batch: Job[] = []
    const keys = new Set<string>()
    let bytes = 0
    let index = this.head
    while (index < this.queue.length && batch.length < this.maxOps) {
      const job = this.queue[index]
      if (job === undefined) break
      if (job.gone) {
        index++
        continue
      }
      const work = job.work
      if (work === undefined || !('put' in work) || keys.has(work.key)) break
      const size = OP_OVERHEAD + work.put.key.length + work.put.value.length
      // A large put gains nothing from company, and alone it is refused alone if too large.
      const alone = job.alone || size > ALONE_BYTES
      if (batch.length > 0 && (alone || bytes + size > this.context.maxBytes)) break
      batch.push(job)
      keys.add(work.key)
      bytes += size
      index++
      if (alone) break
    }
    this.head = index
    return batch
  }

  private send(call: Observable<unknown>, jobs: Job[]): void {
    this.busy = true
    let settled = false
    const finish = (error: unknown, value?: unknown) => {
      if (settled) return
      settled = true
      this.busy = false
      if (error !== undefined && jobs.length > 1 && aboutOnePut(error)) {
        if (tooManyOps(error)) this.maxOps = Math.max(1, Math.floor(jobs.length / 2))
        // Again put by put, ahead of everything queued after them: each gets its own answer.
        const again = jobs.filter((job) => !job.gone)
        for (const job of again) job.alone = true
        this.queue.splice(this.head, 0, ...again)
      } else {
        // A put's answer is nothing; a call of its own answers what it answered.
        const answer = jobs.length === 1 && jobs[0]?.work !== undefined && 'run' in jobs[0].work
        for (const job of jobs) job.settle(error, answer ? value : undefined)
      }
      this.schedule()
    }
    call.subscribe({
      next: (value) => {
        finish(undefined, value)
      },
      error: (error: unknown) => {
        finish(error ?? new Error('etcd write failed'))
      },
      complete: () => {
        finish(undefined)
      },
    })
  }
}

function putOf(job: Job): WirePutRequest {
  const work = job.work
  if (work === undefined || !('put' in work)) throw new Error('writer: not a put')
  return work.put
}

/**
 * Whether a batch's failure may be about one of its puts, not the connection: its size, a lease
 * etcd no longer has, a permission, an argument etcd refuses. A connection fault or a timeout is
 * the same for every put of the batch.
 */
function aboutOnePut(error: unknown): boolean {
  if (error instanceof EtcdLeaseInvalidError || isTooLarge(error)) return true
  if (!(error instanceof Error) || error.name === 'TimeoutError') return false
  return !isRecoverableError(error)
}

function tooManyOps(error: unknown): boolean {
  return error instanceof Error && error.message.includes('too many operations in txn request')
}
