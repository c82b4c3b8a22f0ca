import type { MsgHdrs } from '@nats-io/transport-node'
import {
  Observable,
  concatMap,
  from,
  lastValueFrom,
  mergeMap,
  reduce,
  tap,
  type OperatorFunction,
} from 'rxjs'
import { ConfigError } from '../../core/errors.js'
import { revision } from '../../core/revision.js'
import type { Change, KeyValue, StoreEvent } from '../../core/events.js'
import { retryWithBackoff } from '../../internal/backoff.js'
import { isRetryable } from '../../core/errors.js'
import { StoreEdge } from '../../internal/edge.js'
import { headers as natsHeaders } from './client.js'
import { API, NAME, errorMapper } from './errors.js'
import { encodeKey } from './keys.js'
import { NatsLink, type Handles } from './link.js'
import { resolveOptions, type NatsStoreOptions } from './options.js'

/** The headers of a bus message. */
export const BUS_HEADERS = {
  /** `put` or `delete`. */
  op: 'Rx-Op',
  /** The revision of the change in the store it came from (decimal). */
  revision: 'Rx-Revision',
  /** The previous value, base64, when the change carried one. */
  prev: 'Rx-Prev',
} as const

/** Where the bus lives: a JetStream stream and the subject prefix of its messages. */
export interface NatsBusOptions extends Omit<NatsStoreOptions, 'bucket' | 'create' | 'directGets'> {
  /** The stream's name. @default 'rx-datasync-changes' */
  readonly stream?: string
  /** Each key's messages go to `<subjectPrefix>.<NATS key>`. @default 'datasync.changes' */
  readonly subjectPrefix?: string
  /**
   * Create the stream when it is missing (subjects `<subjectPrefix>.>`, file storage, a two
   * minute deduplication window), with `replicas` copies.
   *
   * @default false
   */
  readonly createStream?: boolean | { readonly replicas?: number }
}

/**
 * A consumer's event as the sink reads it (the orchestrator's `ResyncEvent` and `ChangeEvent` of
 * bytes are ones): its revision, its items or changes, and its acknowledgement.
 */
export interface AckedEvent {
  readonly revision: bigint
  readonly items?: readonly KeyValue<Uint8Array>[]
  readonly changes?: readonly Change<Uint8Array>[]
  readonly done: (error?: unknown) => void
}

/** What the sink publishes per event. */
export interface SinkReceipt {
  /** The event's revision in the store it came from. */
  readonly revision: bigint
  /** Messages the stream stored. */
  readonly published: number
  /** Messages the stream dropped as already stored (their deduplication id was seen). */
  readonly duplicates: number
}

/** Options of {@link createNatsSink}. */
export interface NatsSinkOptions extends NatsBusOptions {
  /** Messages in flight at once within one event (events are published one after another). @default 64 */
  readonly maxInFlight?: number
}

/** A publisher of change events to a JetStream stream: see {@link createNatsSink}. */
export interface NatsSink {
  /**
   * The operator: publishes each event's changes (a snapshot or a resync as puts of its items,
   * and deletes of the keys it no longer holds), then emits a {@link SinkReceipt}. A consumer
   * event is acknowledged (`done()`) once every one of its messages is stored, or with the error
   * when publishing failed for good.
   */
  publish<E extends StoreEvent<Uint8Array> | AckedEvent>(): OperatorFunction<E, SinkReceipt>
  close(): Promise<void>
}

/** The bus settings besides the connection's. */
export interface BusSettings {
  readonly stream: string
  readonly subjectPrefix: string
  readonly createReplicas: number | undefined
}

const STREAM_NAME = /^[-\w]+$/
const SUBJECT = /^[-\w]+(\.[-\w]+)*$/

/** Checks the bus fields. @throws ConfigError naming the field. */
export function resolveBus(options: NatsBusOptions, source: string): BusSettings {
  const stream = options.stream ?? 'rx-datasync-changes'
  if (!STREAM_NAME.test(stream)) {
    throw new ConfigError(
      source,
      'stream',
      `expected letters, digits, '-' and '_', got ${JSON.stringify(stream)}`,
    )
  }
  const subjectPrefix = options.subjectPrefix ?? 'datasync.changes'
  if (!SUBJECT.test(subjectPrefix)) {
    throw new ConfigError(
      source,
      'subjectPrefix',
      `expected dot-separated tokens of letters, digits, '-' and '_', got ${JSON.stringify(subjectPrefix)}`,
    )
  }
  const create = options.createStream
  const replicas =
    create === undefined || create === false
      ? undefined
      : create === true
        ? 1
        : (create.replicas ?? 1)
  if (replicas !== undefined && ![1, 3, 5].includes(replicas)) {
    throw new ConfigError(source, 'createStream.replicas', `expected 1, 3 or 5, got ${replicas}`)
  }
  return { stream, subjectPrefix, createReplicas: replicas }
}

/** Makes the bus stream when asked to and it is missing. */
export async function ensureStream(handles: Handles, bus: BusSettings): Promise<void> {
  if (bus.createReplicas === undefined) return
  const exists = await handles.jsm.streams.info(bus.stream).then(
    () => true,
    (error: unknown) => {
      if ((error as { code?: unknown }).code === API.streamNotFound) return false
      throw error
    },
  )
  if (exists) return
  await handles.jsm.streams.add({
    name: bus.stream,
    subjects: [`${bus.subjectPrefix}.>`],
    num_replicas: bus.createReplicas,
    duplicate_window: 120_000_000_000,
  })
}

/**
 * Creates a sink that publishes change streams to a JetStream stream, one subject per key
 * (`<subjectPrefix>.<NATS key>`, keys encoded as in the KV store), at least once:
 *
 * - each change is one message: the value as payload (empty for a delete), its operation, its
 *   revision and its prev (base64) in the `Rx-Op`, `Rx-Revision` and `Rx-Prev` headers;
 * - each message carries a deduplication id (`Nats-Msg-Id`: revision, key, operation), so a
 *   message published again after a failure or a restart within the stream's duplicate window is
 *   stored once;
 * - a failed publish is retried with backoff while the error is retryable;
 * - events are published one after another (per-key order); within one, at most `maxInFlight`
 *   messages wait for the stream's answer (backpressure: the next event is taken only after).
 *
 * ```ts
 * const sink = createNatsSink({ servers: 'nats://n1:4222', createStream: true })
 * sync.register('publisher', { prefixes: ['config/'] }).events$.pipe(sink.publish()).subscribe()
 * // or a store watch: store.watch(['config/']).pipe(sink.publish()).subscribe()
 * ```
 */
export function createNatsSink(options: NatsSinkOptions = {}): NatsSink {
  const source = `${NAME} sink options`
  const settings = resolveOptions({ ...options, bucket: 'unused' }, source)
  const bus = resolveBus(options, source)
  const maxInFlight = options.maxInFlight ?? 64
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
    throw new ConfigError(
      source,
      'maxInFlight',
      `expected a whole number of at least 1, got ${JSON.stringify(maxInFlight)}`,
    )
  }
  const mapError = errorMapper(settings.servers, bus.stream)
  const edge = new StoreEdge({ name: NAME, mapError })
  const link = new NatsLink(settings, edge.health.part(), false)
  let ready: Promise<Handles> | undefined
  const handles = () =>
    (ready ??= lastValueFrom(link.handles())
      .then(async (h) => {
        await ensureStream(h, bus)
        return h
      })
      .catch((error: unknown) => {
        ready = undefined
        throw error
      }))
  /** The keys the sink published as present, for the deletes a snapshot implies. */
  const present = new Map<string, bigint>()

  const send = (change: Change<Uint8Array>): Observable<'stored' | 'duplicate'> =>
    edge
      .op(`publish ${change.op} '${change.key}'`, async () => {
        const h = await handles()
        const ack = await h.js.publish(
          `${bus.subjectPrefix}.${encodeKey(change.key)}`,
          change.op === 'put' ? change.value : new Uint8Array(0),
          {
            headers: headersOf(change),
            msgID: `${change.revision}:${encodeKey(change.key)}:${change.op}`,
          },
        )
        return ack.duplicate ? 'duplicate' : 'stored'
      })
      .pipe(
        retryWithBackoff({
          firstMs: settings.retryDelayMs,
          maxMs: settings.maxRetryDelayMs,
          scheduler: settings.scheduler,
          shouldRetry: isRetryable,
        }),
      )

  const changesOf = (event: StoreEvent<Uint8Array> | AckedEvent): Change<Uint8Array>[] => {
    const items = 'items' in event ? event.items : undefined
    if (items === undefined) return 'changes' in event ? [...(event.changes ?? [])] : []
    const keep = new Set(items.map((item) => item.key))
    const gone: Change<Uint8Array>[] = [...present.keys()]
      .filter((key) => !keep.has(key))
      .map((key): Change<Uint8Array> => ({ op: 'delete', key, revision: revision(event.revision) }))
    return [
      ...items.map((item): Change<Uint8Array> => ({
        op: 'put',
        key: item.key,
        value: item.value,
        revision: item.revision,
      })),
      ...gone,
    ]
  }

  return {
    publish<E extends StoreEvent<Uint8Array> | AckedEvent>(): OperatorFunction<E, SinkReceipt> {
      return concatMap((event: E) => {
        const changes = changesOf(event)
        const done = 'done' in event ? event.done : undefined
        return from(changes).pipe(
          mergeMap((change) => send(change), maxInFlight),
          reduce(
            (receipt, outcome) =>
              outcome === 'stored'
                ? { ...receipt, published: receipt.published + 1 }
                : { ...receipt, duplicates: receipt.duplicates + 1 },
            { revision: BigInt(event.revision), published: 0, duplicates: 0 } as SinkReceipt,
          ),
          tap({
            next: () => {
              for (const change of changes) {
                if (change.op === 'put') present.set(change.key, change.revision)
                else present.delete(change.key)
              }
              done?.()
            },
            error: (error: unknown) => done?.(error),
          }),
        )
      })
    },
    async close() {
      edge.close()
      await link.close()
    },
  }
}

function headersOf(change: Change<Uint8Array>): MsgHdrs {
  const h = natsHeaders()
  h.set(BUS_HEADERS.op, change.op)
  h.set(BUS_HEADERS.revision, change.revision.toString())
  if (change.prev !== undefined)
    h.set(BUS_HEADERS.prev, Buffer.from(change.prev).toString('base64'))
  return h
}
