import type { ConsumerConfig } from '@nats-io/jetstream'
import type { Msg } from '@nats-io/transport-node'
import {
  Observable,
  defer,
  endWith,
  ignoreElements,
  interval,
  map,
  takeWhile,
  type SchedulerLike,
} from 'rxjs'
import type { KeyValue } from '../../core/events.js'
import type { Revision } from '../../core/revision.js'
import { matchesAny } from '../../core/snapshot.js'
import { byKey } from '../../internal/order.js'
import { UnavailableError } from '../../core/errors.js'
import { AckPolicy, DeliverPolicy, createInbox, nanos, nuid, type Handles } from './client.js'
import { NAME } from './errors.js'
import { decodeKey, filterFor } from './keys.js'
import { concatSteps } from './steps.js'

/** One stored message of the bucket, as a consumer delivered it. */
export interface FeedMessage {
  readonly type: 'message'
  /** The stream sequence: the revision. */
  readonly seq: bigint
  /** The NATS key: the subject without the bucket's prefix. */
  readonly natsKey: string
  /** A `KV-Operation: DEL` or `PURGE` marker is a delete. */
  readonly op: 'put' | 'delete'
  readonly value: Uint8Array
  /** Messages the consumer still has for this client after this one. */
  readonly pending: number
}

/** The consumer exists: `pending` messages matched its start when it was made. */
export interface FeedCreated {
  readonly type: 'created'
  readonly pending: number
}

/** The consumer's idle heartbeat: it has nothing more for this client now. */
export interface FeedIdle {
  readonly type: 'idle'
}

export type FeedEvent = FeedCreated | FeedMessage | FeedIdle

/** Where a consumer starts. */
export type FeedStart =
  { readonly from: 'last-per-subject' } | { readonly from: 'sequence'; readonly seq: bigint }

/** What a feed needs besides the handles. */
export interface FeedOptions {
  /** The subject filter below the bucket's prefix (`a.b.>`, `>`). */
  readonly filter: string
  readonly start: FeedStart
  /** Only the headers (listing keys). */
  readonly headersOnly?: boolean
  /** The consumer's idle heartbeat; three missed end the feed. */
  readonly heartbeatMs: number
  readonly scheduler: SchedulerLike
  /** Emits when the connection is lost: the feed ends (its consumer may have lost messages). */
  readonly disconnects: Observable<void>
}

const OPERATION = 'KV-Operation'

/**
 * The bucket's messages through an ephemeral push consumer of its own: subscribed to a fresh
 * inbox first, then the consumer is made (flow control, idle heartbeats, no acks, in memory, one
 * replica). It emits `created` with the consumer's pending count, then each message in stream
 * order. It errors with a retryable `UnavailableError` the moment it cannot vouch that nothing
 * was skipped: a delivery sequence that jumps, a heartbeat that says messages went missing,
 * three heartbeats missed, the consumer deleted, or the connection lost. Unsubscribing
 * unsubscribes the inbox and deletes the consumer (P7).
 *
 * Not the client's ordered consumer: that one recreates itself silently after a gap, from
 * wherever the stream starts now, which could skip history that was purged meanwhile; here the
 * watch decides (resume from its last revision, or list afresh).
 */
export function consumerFeed(handles: Handles, options: FeedOptions): Observable<FeedEvent> {
  return new Observable<FeedEvent>((subscriber) => {
    const { nc, jsm, stream, prefix } = handles
    const name = `rxds_${nuid.next()}`
    const inbox = createInbox()
    const early: Msg[] = []
    let created = false
    let delivered = 0
    let quietTicks = 0
    const fail = (message: string) => {
      subscriber.error(new UnavailableError(NAME, `watch consumer ${name}: ${message}`))
    }
    const deliver = (msg: Msg) => {
      quietTicks = 0
      const headers = msg.headers
      const data = msg.data
      if (data.length === 0 && headers !== undefined && headers.code > 0) {
        if (headers.code === 100) {
          if (msg.reply !== undefined && msg.reply !== '') msg.respond()
          const stalled = headers.get('Nats-Consumer-Stalled')
          if (stalled !== '') nc.publish(stalled)
          const last = Number(headers.get('Nats-Last-Consumer') || '0')
          if (last > delivered) fail(`a heartbeat says ${last - delivered} messages went missing`)
          // A stalled consumer (flow control unanswered) still has messages: not idle.
          else if ((msg.reply === undefined || msg.reply === '') && stalled === '')
            subscriber.next({ type: 'idle' })
        } else if (headers.code === 409) {
          fail(`the server ended the consumer (${headers.description})`)
        }
        return
      }
      const reply = msg.reply
      if (reply === undefined || !readAck(reply)) return
      if (lastAck.dseq !== delivered + 1) {
        fail(`delivery ${lastAck.dseq} came after ${delivered}: messages were skipped`)
        return
      }
      delivered = lastAck.dseq
      const operation = headers === undefined ? '' : headers.get(OPERATION)
      subscriber.next({
        type: 'message',
        seq: lastAck.sseq,
        natsKey: msg.subject.slice(prefix.length),
        op: operation === 'DEL' || operation === 'PURGE' ? 'delete' : 'put',
        value: data,
        pending: lastAck.pending,
      })
    }
    const subscription = nc.subscribe(inbox, {
      callback: (error, msg) => {
        if (error !== null) subscriber.error(error)
        else if (created) deliver(msg)
        else early.push(msg)
      },
    })
    const config: Partial<ConsumerConfig> = {
      name,
      deliver_subject: inbox,
      ack_policy: AckPolicy.None,
      filter_subject: `${prefix}${options.filter}`,
      flow_control: true,
      idle_heartbeat: nanos(options.heartbeatMs),
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: nanos(Math.max(30_000, options.heartbeatMs * 6)),
      ...(options.headersOnly === true ? { headers_only: true } : {}),
      ...(options.start.from === 'sequence'
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Number(options.start.seq) }
        : { deliver_policy: DeliverPolicy.LastPerSubject }),
    }
    let made = false
    let ended = false
    jsm.consumers.add(stream, config).then(
      (info) => {
        made = true
        if (ended) {
          jsm.consumers.delete(stream, name).catch(() => undefined)
          return
        }
        created = true
        subscriber.next({ type: 'created', pending: info.num_pending })
        for (const msg of early.splice(0)) deliver(msg)
      },
      (error: unknown) => {
        subscriber.error(error)
      },
    )
    const watchdog = interval(options.heartbeatMs, options.scheduler).subscribe(() => {
      quietTicks++
      if (created && quietTicks > 3) fail(`no heartbeat for ${quietTicks} intervals`)
    })
    const lost = options.disconnects.subscribe(() => {
      fail('the connection was lost')
    })
    return () => {
      ended = true
      watchdog.unsubscribe()
      lost.unsubscribe()
      subscription.unsubscribe()
      if (made && !nc.isClosed()) jsm.consumers.delete(stream, name).catch(() => undefined)
    }
  })
}

/** The delivery facts in a JetStream message's reply subject (`$JS.ACK...`); exported for its test. */
export function ackInfo(
  reply: string | undefined,
): { readonly sseq: bigint; readonly dseq: number; readonly pending: number } | undefined {
  if (reply === undefined || !readAck(reply)) return undefined
  return { sseq: lastAck.sseq, dseq: lastAck.dseq, pending: lastAck.pending }
}

/** What {@link readAck} read last: one object for every message, not one per message. */
const lastAck = { sseq: 0n, dseq: 0, pending: 0 }
/** The positions of the last seven dots of the subject {@link readAck} reads, from the end. */
const dotsFromEnd = new Int32Array(7)

/**
 * Reads the facts of an ack subject into {@link lastAck}; false when `reply` is not one.
 * v1: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`;
 * v2: `$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>[.<token>]`.
 * This runs for every message: one pass over the subject for the dots, the numbers read from
 * their digits, no token strings.
 */
function readAck(reply: string): boolean {
  if (!reply.startsWith('$JS.ACK.')) return false
  let dots = 0
  for (let i = reply.length - 1; i >= 0; i--) {
    if (reply.charCodeAt(i) === 46 /* . */) {
      if (dots < 7) dotsFromEnd[dots] = i
      dots++
    }
  }
  if (dots < 8) return false
  // Token k from the end runs from after dot k to before dot k - 1 (the end for k = 0).
  const last = dots === 11 ? 1 : 0
  const dot = dotsFromEnd
  const pending = digits(reply, (dot[last] ?? 0) + 1, last === 0 ? reply.length : (dot[0] ?? 0))
  const dseq = digits(reply, (dot[last + 2] ?? 0) + 1, dot[last + 1] ?? 0)
  const sseqFrom = (dot[last + 3] ?? 0) + 1
  const sseqTo = dot[last + 2] ?? 0
  const sseq = digits(reply, sseqFrom, sseqTo)
  if (pending < 0 || dseq < 0 || sseq < 0) return false
  lastAck.pending = pending
  lastAck.dseq = dseq
  // Beyond 15 digits a double may round: the digits themselves then.
  lastAck.sseq = sseqTo - sseqFrom < 16 ? BigInt(sseq) : BigInt(reply.slice(sseqFrom, sseqTo))
  return true
}

/** The decimal number in `text` from `from` to `to`, or -1 if it is not one. */
function digits(text: string, from: number, to: number): number {
  if (to <= from) return -1
  let value = 0
  for (let i = from; i < to; i++) {
    const code = text.charCodeAt(i) - 48
    if (code < 0 || code > 9) return -1
    value = value * 10 + code
  }
  return value
}

/**
 * Tells when a `last-per-subject` consumer has delivered its start set (the last message of
 * every key when it was made): on the message after which the consumer has nothing pending.
 * Not a count of messages: a key rewritten after it was delivered comes again, and a key
 * rewritten before loses its start message (history 1) and comes later with the rewrite.
 *
 * nats-server 2.9 delivers the start set's last message a second time as it goes on with the
 * stream, and counts that redelivery off its pending count: each redelivery means one more
 * message to wait for once the count says 0 (without it, a key rewritten meanwhile was missing
 * from the snapshot: a phantom delete, found by the chaos run).
 */
export class StartSet {
  #highest = -1n
  #redelivered = 0
  /** Messages since the pending count first said 0 (-1: it has not yet). */
  #sinceZero = -1

  /** The highest stream sequence delivered. */
  get highest(): bigint {
    return this.#highest
  }

  /**
   * Takes a message of the consumer: `fresh` is false for a redelivery (a sequence already
   * seen), `complete` once the start set is in. `uncertain`: the count says 0 but a redelivery
   * may have taken one off it; when the stream holds nothing after {@link highest} (the server
   * counted the redelivery in, as it does when nothing is written meanwhile), it is complete.
   */
  take(message: FeedMessage): {
    readonly fresh: boolean
    readonly complete: boolean
    readonly uncertain: boolean
  } {
    const fresh = message.seq > this.#highest
    if (fresh) this.#highest = message.seq
    else this.#redelivered++
    if (this.#sinceZero >= 0) this.#sinceZero++
    else if (message.pending === 0) this.#sinceZero = 0
    const complete = this.#sinceZero >= this.#redelivered
    return { fresh, complete, uncertain: !complete && message.pending === 0 }
  }
}

/** What {@link lastPerKey} read: every key's last message, and the highest sequence seen. */
export interface LastPerKey {
  readonly items: readonly KeyValue<Uint8Array>[]
  readonly highest: bigint
}

/**
 * Every key under `prefix` with its last message, from a `last-per-subject` feed on the
 * prefix's subject filter (see `filterFor`), read until the start set is in ({@link StartSet};
 * `streamLast` reads the stream's last sequence when the count is uncertain). A delete marker
 * removes its key.
 */
export function lastPerKey(
  feed: Observable<FeedEvent>,
  prefix: string,
  streamLast: () => Observable<bigint>,
): Observable<LastPerKey> {
  return defer(() => {
    const exact = filterFor(prefix).exact
    const start = new StartSet()
    const items = new Map<string, KeyValue<Uint8Array>>()
    return feed.pipe(
      concatSteps((event): readonly boolean[] | Observable<boolean> => {
        if (event.type === 'created') return [event.pending === 0]
        if (event.type === 'idle') return [true]
        const { fresh, complete, uncertain } = start.take(event)
        const key = decodeKey(event.natsKey)
        if (fresh && (exact || matchesAny(key, [prefix]))) {
          if (event.op === 'put')
            items.set(key, { key, value: event.value, revision: event.seq as Revision })
          else items.delete(key)
        }
        if (!uncertain) return [complete]
        return streamLast().pipe(map((last) => last <= start.highest))
      }),
      takeWhile((done) => !done),
      ignoreElements(),
      endWith(undefined),
      map(() => ({
        items: Array.from(items.values()).sort(byKey),
        highest: start.highest < 0n ? 0n : start.highest,
      })),
    )
  })
}
