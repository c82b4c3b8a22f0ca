import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream'
import {
  EMPTY,
  Observable,
  Subject,
  concat,
  defer,
  filter,
  from,
  map,
  merge,
  mergeMap,
  switchMap,
  type Subscription,
} from 'rxjs'
import { toMillis, type Duration } from '../../core/duration.js'
import { CapabilityError, ConfigError } from '../../core/errors.js'
import type { Change, StoreEvent } from '../../core/events.js'
import { revision, type Revision } from '../../core/revision.js'
import { matchesAny } from '../../core/snapshot.js'
import type { Capabilities, KvStore, WatchOptions } from '../../core/store.js'
import { StoreEdge } from '../../internal/edge.js'
import { compareKeys } from '../../internal/order.js'
import { BUS_HEADERS, ensureStream, resolveBus, type NatsBusOptions } from './bus-sink.js'
import { AckPolicy, DeliverPolicy, nanos } from './client.js'
import { API, NAME, errorMapper } from './errors.js'
import { lastPerKey } from './feed.js'
import { assertKey, assertPrefix, assertPrefixes, decodeKey, filterFor, watchRoot } from './keys.js'
import { NatsLink, type Handles } from './link.js'
import { resolveOptions } from './options.js'

/** Options of {@link createNatsStreamSource}. */
export interface NatsSourceOptions extends NatsBusOptions {
  /** The durable consumer's name. @default 'rx-datasync-source' */
  readonly durable?: string
  /**
   * Where a watch called without `after` starts: nothing (a snapshot of the last message per
   * key, then what follows), a revision (the last one the application applied, from its own
   * records: no snapshot, exactly what follows), or `'acked'`: after the durable consumer's ack
   * floor (what this source acknowledged last time; at least once).
   *
   * @default none: a snapshot
   */
  readonly after?: Revision | 'acked'
  /** How long a delivered message may stay unacknowledged before the stream sends it again. @default '60s' */
  readonly ackWait?: Duration
  /** Messages delivered and not yet acknowledged, at most (backpressure). @default 10000 */
  readonly maxAckPending?: number
}

/** A read-only store over a change stream: see {@link createNatsStreamSource}. */
export interface NatsStreamSource extends KvStore {
  /**
   * Acknowledges to the stream every message the current watch delivered up to `upTo` (a
   * revision it emitted). {@link acknowledgeApplied} calls it when the orchestrator's consumers
   * have applied everything.
   */
  acknowledge(upTo: Revision): void
  /** The revision of each change event the watch emitted, after the event was handed on. */
  readonly emitted$: Observable<Revision>
}

const CAPABILITIES: Capabilities = Object.freeze({
  write: false,
  txn: false,
  ttl: false,
  nativePrev: false,
  resumable: true,
  atomicPrefixDelete: false,
})

/**
 * Creates a read-only {@link NatsStreamSource} over a stream a {@link createNatsSink} fills: the
 * orchestrator and a combined store use it as any store. Its revision is the stream sequence.
 *
 * - `watch` starts with the last message of every key under the prefixes (a snapshot replayed
 *   from the stream at its last sequence L, deletes left out), then follows a durable consumer
 *   (explicit acks) made afresh from L + 1 (or from `after` + 1, with no snapshot), in stream
 *   order; a message whose `Rx-Revision` is not above the one the watch last gave for its key (a
 *   republished duplicate) is skipped;
 * - each message is acknowledged only when {@link NatsStreamSource.acknowledge} passes it:
 *   {@link acknowledgeApplied} does so once every consumer of the orchestrator acknowledged its
 *   events; a message nobody acknowledged (a consumer failed, or the process died) is delivered
 *   again after `ackWait`, and `after: 'acked'` resumes from the last acknowledged one;
 * - writes fail with a `CapabilityError`; `get`, `list`, `listKeys` read the last message per key.
 * - a lost connection is the NATS client's to restore: the durable consumer goes on delivering
 *   where it was (unacknowledged messages come again), so the watch emits no new snapshot and
 *   the watch option `relistOnReconnect` (the orchestrator's `resyncAfterReconnect`) has no
 *   effect here.
 *
 * One watch at a time per source (they share the durable consumer).
 */
export function createNatsStreamSource(options: NatsSourceOptions = {}): NatsStreamSource {
  const source = `${NAME} source options`
  const settings = resolveOptions({ ...options, bucket: 'unused' }, source)
  const bus = resolveBus(options, source)
  const durable = options.durable ?? 'rx-datasync-source'
  if (!/^[-\w]+$/.test(durable)) {
    throw new ConfigError(
      source,
      'durable',
      `expected letters, digits, '-' and '_', got ${JSON.stringify(durable)}`,
    )
  }
  const ackWaitMs = toMillis(options.ackWait ?? '60s', `${source}: ackWait`)
  const maxAckPending = options.maxAckPending ?? 10_000
  const edge = new StoreEdge({ name: NAME, mapError: errorMapper(settings.servers, bus.stream) })
  const link = new NatsLink(settings, edge.health.part(), false)
  const emitted = new Subject<Revision>()
  /** Delivered messages waiting for their acknowledgement, in stream order. */
  const pending: JsMsg[] = []

  const busHandles = (): Observable<Handles> =>
    link.handles().pipe(
      mergeMap(async (h) => {
        await ensureStream(h, bus)
        return { ...h, stream: bus.stream, prefix: `${bus.subjectPrefix}.` }
      }),
    )

  const lastPerKeyOf = (prefix: string, headersOnly: boolean) =>
    busHandles().pipe(
      switchMap((h) =>
        from(h.jsm.streams.info(bus.stream)).pipe(
          switchMap((info) => {
            const last = BigInt(info.state.last_seq)
            const feed = link.feed(
              h,
              filterFor(prefix).subject,
              { from: 'last-per-subject' },
              headersOnly,
            )
            const streamLast = () =>
              from(h.jsm.streams.info(bus.stream)).pipe(map((now) => BigInt(now.state.last_seq)))
            return lastPerKey(feed, prefix, streamLast).pipe(
              map(({ items, highest }) => ({
                at: revision(highest > last ? highest : last),
                items,
              })),
            )
          }),
        ),
      ),
    )

  /** Makes the durable consumer afresh from `start` + 1; returns the ack floor it had. */
  const resetDurable = async (h: Handles, filterSubject: string, start: bigint | undefined) => {
    const floor = await h.jsm.consumers.info(bus.stream, durable).then(
      (info) => BigInt(info.ack_floor.stream_seq),
      (error: unknown) => {
        if ((error as { code?: unknown }).code === API.consumerNotFound) return 0n
        throw error
      },
    )
    const from = start ?? floor
    await h.jsm.consumers.delete(bus.stream, durable).catch(() => false)
    await h.jsm.consumers.add(bus.stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Number(from) + 1,
      filter_subject: `${bus.subjectPrefix}.${filterSubject}`,
      ack_wait: nanos(ackWaitMs),
      max_ack_pending: maxAckPending,
    })
    return from
  }

  const watchStream = (prefixes: readonly string[], after: Revision | 'acked' | undefined) => {
    const { root, prefixes: kept } = watchRoot(prefixes)
    const subject = filterFor(root)
    const matches = (key: string) => (subject.exact && kept.length === 1) || matchesAny(key, kept)
    const held = new Map<string, { value: Uint8Array; origin: bigint }>()
    let lastEmitted = 0n
    const health = edge.health.part()

    const snapshot: Observable<{ event?: StoreEvent<Uint8Array>; start?: bigint }> =
      after === undefined
        ? lastPerKeyOf(root, false).pipe(
            map(({ at, items }) => {
              const mine = items.filter((item) => matches(item.key))
              for (const item of mine) held.set(item.key, { value: item.value, origin: 0n })
              return {
                event: { type: 'snapshot', revision: at, items: mine, cause: 'startup' },
                start: at,
              }
            }),
          )
        : EMPTY

    const follow = (start: bigint | undefined) =>
      busHandles().pipe(
        switchMap((h) =>
          from(resetDurable(h, subject.subject, start)).pipe(
            switchMap((from) => {
              lastEmitted = from
              health.up()
              return new Observable<StoreEvent<Uint8Array>>((subscriber) => {
                let messages: ConsumerMessages | undefined
                let stopped = false
                void h.js.consumers.get(bus.stream, durable).then(
                  async (consumer) => {
                    if (stopped) return
                    messages = await consumer.consume({
                      max_messages: Math.min(maxAckPending, 1000),
                      callback: (m) => {
                        const event = changeOf(m)
                        if (event !== undefined) {
                          subscriber.next(event)
                          emitted.next(event.revision)
                        }
                      },
                    })
                  },
                  (error: unknown) => {
                    subscriber.error(error)
                  },
                )
                return () => {
                  stopped = true
                  void messages?.close()
                }
              })
            }),
          ),
        ),
      )

    const changeOf = (m: JsMsg): StoreEvent<Uint8Array> | undefined => {
      const seq = BigInt(m.seq)
      if (seq <= lastEmitted) return undefined
      lastEmitted = seq
      pending.push(m)
      const key = decodeKey(m.subject.slice(bus.subjectPrefix.length + 1))
      if (!matches(key)) return undefined
      const origin = BigInt(m.headers?.get(BUS_HEADERS.revision) || '0')
      const before = held.get(key)
      if (before !== undefined && origin > 0n && origin <= before.origin) return undefined
      const at = revision(seq)
      let change: Change<Uint8Array>
      if (m.headers?.get(BUS_HEADERS.op) === 'delete') {
        if (before === undefined) return undefined
        held.delete(key)
        change = { op: 'delete', key, prev: before.value, revision: at }
      } else {
        held.set(key, { value: m.data, origin })
        change =
          before === undefined
            ? { op: 'put', key, value: m.data, revision: at }
            : { op: 'put', key, value: m.data, prev: before.value, revision: at }
      }
      return { type: 'changes', revision: at, changes: [change] }
    }

    return defer(() => {
      let start: bigint | undefined = typeof after === 'bigint' ? after : undefined
      return concat(
        snapshot.pipe(
          map((step) => {
            start = step.start
            return step.event
          }),
          filter((event): event is StoreEvent<Uint8Array> => event !== undefined),
        ),
        defer(() => follow(after === 'acked' && start === undefined ? undefined : (start ?? 0n))),
      )
    })
  }

  const refuse = (what: string) =>
    defer(() => {
      throw new CapabilityError(
        NAME,
        what,
        'a stream source is read-only; write to the store the sink publishes from',
      )
    })

  return {
    name: NAME,
    capabilities: CAPABILITIES,
    status$: edge.health.status$,
    emitted$: emitted.asObservable(),

    acknowledge(upTo: Revision): void {
      for (
        let first = pending[0];
        first !== undefined && BigInt(first.seq) <= upTo;
        first = pending[0]
      ) {
        pending.shift()
        first.ack()
      }
    },

    watch(
      prefixes: readonly string[],
      watchOptions?: WatchOptions,
    ): Observable<StoreEvent<Uint8Array>> {
      return edge.watch(
        defer(() => {
          assertPrefixes(prefixes)
          pending.length = 0
          return watchStream(prefixes, watchOptions?.after ?? options.after)
        }),
      )
    },
    get(key: string) {
      return edge.op(`get '${key}'`, () => {
        assertKey('get', key)
        return lastPerKeyOf(key, false).pipe(
          map(({ items }) => items.find((item) => item.key === key)),
        )
      })
    },
    list(prefix: string) {
      return edge.op(`list '${prefix}'`, () => {
        assertPrefix('list', prefix)
        return lastPerKeyOf(prefix, false).pipe(map(({ items }) => items))
      })
    },
    listKeys(prefix: string) {
      return edge.op(`listKeys '${prefix}'`, () => {
        assertPrefix('listKeys', prefix)
        return lastPerKeyOf(prefix, true).pipe(
          map(({ items }) => items.map((item) => item.key).sort(compareKeys)),
        )
      })
    },
    put: () => refuse('writes'),
    delete: () => refuse('writes'),
    txn: () => refuse('writes'),
    async close() {
      edge.close()
      emitted.complete()
      await link.close()
    },
  }
}

/** What {@link acknowledgeApplied} reads of an orchestrator (`createDatasync`'s result is one). */
export interface AppliedSignals {
  readonly status$: Observable<{ readonly state: string }>
  readonly activity$: Observable<
    | { readonly type: 'delivered'; readonly consumer: string }
    | { readonly type: 'acknowledged'; readonly consumer: string; readonly error?: unknown }
    | { readonly type: 'lag'; readonly consumer: string; readonly lag: number }
    | { readonly type: string }
  >
}

/**
 * Acknowledges to the stream what the orchestrator's consumers applied: after each change the
 * source emits and each acknowledgement, when the orchestrator is `in-sync` and every consumer
 * has acknowledged every event it was given and has no key waiting, every message up to the last
 * emitted revision is acknowledged. A consumer that acknowledged with an error stops the
 * acknowledgements for the rest of the run: the messages from there on are delivered again (after
 * `ackWait`, or to the next run with `after: 'acked'`). Unsubscribe to stop.
 */
export function acknowledgeApplied(source: NatsStreamSource, sync: AppliedSignals): Subscription {
  const inFlight = new Map<string, number>()
  const lag = new Map<string, number>()
  let state = ''
  let failed = false
  let last: Revision | undefined
  const check = () => {
    if (failed || state !== 'in-sync' || last === undefined) return
    for (const n of inFlight.values()) if (n > 0) return
    for (const n of lag.values()) if (n > 0) return
    source.acknowledge(last)
  }
  return merge(
    sync.status$.pipe(map((status) => () => (state = status.state))),
    source.emitted$.pipe(map((at) => () => (last = at))),
    sync.activity$.pipe(
      map((activity) => () => {
        if (!('consumer' in activity)) return
        const name = activity.consumer
        if (activity.type === 'delivered') inFlight.set(name, (inFlight.get(name) ?? 0) + 1)
        else if (activity.type === 'acknowledged') {
          inFlight.set(name, (inFlight.get(name) ?? 1) - 1)
          if ('error' in activity && activity.error !== undefined) failed = true
        } else if (activity.type === 'lag' && 'lag' in activity) lag.set(name, activity.lag)
      }),
    ),
  ).subscribe((apply) => {
    apply()
    check()
  })
}
