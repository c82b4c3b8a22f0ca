import {
  EMPTY,
  asapScheduler,
  auditTime,
  catchError,
  concat,
  concatMap,
  defer,
  exhaustMap,
  filter,
  finalize,
  from,
  ignoreElements,
  map,
  merge,
  of,
  repeat,
  startWith,
  Subject,
  tap,
  throwError,
  timer,
  type Observable,
} from 'rxjs'
import type { StoreEvent } from '../../core/events.js'
import { matchesAny } from '../../core/snapshot.js'
import type { HealthPart } from '../../internal/store-health.js'
import { ArrivalOrder, keysOf, needsRead, type Unit } from './arrivals.js'
import { clusterTopology, type Topology } from './cluster.js'
import { SessionEnd, type WatchContext, type WatchState } from './context.js'
import { NON_WRITE_EVENTS, keyPattern } from './keyspace.js'
import { LeanMemory } from './lean-memory.js'
import { SessionLinks, type Endpoint } from './links.js'
import { listMasters } from './listing.js'
import { ValueMemory, type Pending, type WatchMemory } from './memory.js'
import { readValues } from './reads.js'
import { SlotRoutes, clusterLayout, readRouted } from './routed.js'
import { decodeWriteMessage, writesChannel } from './messages.js'

/** At most this many keys are read per batch of notifications. */
const MAX_BATCH_KEYS = 5_000

/** What a batch's reads found. */
type ReadResults = Map<string, Uint8Array | undefined>

/**
 * One session of a watch (see `watchKeys`): it subscribes, lists, emits the snapshot and then
 * the changes, until the first sign that notifications may have been lost; then it errors with
 * a {@link SessionEnd} (or a raw client error). Unsubscribing closes its connections.
 */
export function session(
  context: WatchContext,
  state: WatchState,
  health: HealthPart,
): Observable<StoreEvent<Uint8Array>> {
  const cluster = context.cluster
  return defer(() => (cluster ? from(clusterLayout(cluster)) : of(undefined))).pipe(
    concatMap((topology) =>
      defer(() => {
        const run = new Session(context, state, health, topology)
        return run.events().pipe(
          finalize(() => {
            run.close()
          }),
        )
      }),
    ),
  )
}

/**
 * A session's pipeline. What arrives goes to the {@link ArrivalOrder} at once (the listeners are
 * synchronous) and kicks the pipeline; the read loop and the barriers are RxJS operators over
 * those kicks, so that one batch and one barrier in flight are properties of `exhaustMap`.
 */
class Session {
  readonly #context: WatchContext
  readonly #state: WatchState
  readonly #health: HealthPart
  readonly #topology: Topology | undefined
  readonly #links: SessionLinks
  readonly #order: ArrivalOrder
  readonly #memory: WatchMemory
  /** Something arrived, or a barrier settled: the queue may have work. */
  readonly #kicks = new Subject<void>()
  readonly #channelPrefix: string
  /** On a Cluster: the slot map and the slot moves, which the listing and the reads follow. */
  readonly #slots: SlotRoutes | undefined

  constructor(
    context: WatchContext,
    state: WatchState,
    health: HealthPart,
    topology: Topology | undefined,
  ) {
    this.#context = context
    this.#state = state
    this.#health = health
    this.#topology = topology
    this.#channelPrefix = `__keyspace@${context.settings.db}__:`
    this.#memory = context.settings.watchMemory === 'lean' ? new LeanMemory() : new ValueMemory()
    this.#links = new SessionLinks(context, topology)
    this.#slots = topology
      ? new SlotRoutes(
          topology,
          this.#links.endpoints.map((endpoint) => endpoint.reader),
        )
      : undefined
    this.#order = new ArrivalOrder(this.#links.endpoints.length)
  }

  /** The snapshot, then the changes; errors when the session ends. */
  events(): Observable<StoreEvent<Uint8Array>> {
    const patterns = this.#state.prefixes.map((prefix) => this.#channelPrefix + keyPattern(prefix))
    const subscribed = this.#links.subscribe(writesChannel(this.#context.settings.db), patterns, {
      keyspace: (endpoint, channel, event) => {
        this.#onKeyspaceEvent(endpoint, channel, event)
      },
      write: (endpoint, payload) => {
        this.#onWriteMessage(endpoint, payload)
      },
    })
    return merge(this.#links.failures, concat(subscribed, this.#snapshot(), this.#live()))
  }

  close(): void {
    this.#links.close()
  }

  /**
   * Lists, then a barrier: everything that arrived before it may be older or newer than the
   * listing, so those keys are read again rather than trusting the messages' values.
   */
  #snapshot(): Observable<StoreEvent<Uint8Array>> {
    const { settings, clock } = this.#context
    const listing = defer(async () => {
      await this.#slots?.readMoves()
      const listed = await listMasters(this.#links.endpoints, {
        prefixes: this.#state.prefixes,
        scanCount: settings.scanCount,
        routes: this.#slots?.routes(),
        clock,
        record: this.#memory.records,
      })
      return { listed, unchanged: (await this.#slots?.unchanged()) ?? true }
    }).pipe(
      concatMap(({ listed, unchanged }) =>
        unchanged
          ? of(listed)
          : throwError(() =>
              SessionEnd.gap('watch-error', 'cluster slots moved during the listing'),
            ),
      ),
    )
    return listing.pipe(
      concatMap((listed) => this.#links.ping().pipe(map(() => listed))),
      map((listed): StoreEvent<Uint8Array> => {
        this.#order.rereadAll()
        this.#memory.listed(listed.values, this.#order.arrived)
        this.#forget()
        const state = this.#state
        const cause = state.started ? state.cause : 'startup'
        state.started = true
        this.#health.up()
        return { type: 'snapshot', revision: clock.tick(), items: listed.items, cause }
      }),
    )
  }

  /** The changes, the barriers that order a Cluster's masters, the heartbeat, the slot map. */
  #live(): Observable<StoreEvent<Uint8Array>> {
    return merge(this.#barriers(), this.#changes(), this.#heartbeat(), this.#slotMapCheck())
  }

  /**
   * Turns the queue into change events, one batch at a time: `exhaustMap` keeps one batch in
   * flight (a kick meanwhile is dropped: the drain goes on while the queue holds units).
   */
  #changes(): Observable<StoreEvent<Uint8Array>> {
    const drain = defer(() => this.#nextBatch()).pipe(
      repeat({ delay: () => (this.#order.queued ? of(true) : EMPTY) }),
    )
    // Kicks are gathered until the socket chunk that raised them is parsed (a microtask): a
    // store's write raises a keyspace event and then, in the same chunk, its message, which makes
    // the event's read unnecessary.
    return this.#kicks.pipe(
      startWith(undefined),
      auditTime(0, asapScheduler),
      exhaustMap(() => drain),
    )
  }

  /**
   * The events of the next batch. A key whose last unit in the batch is a write message needs no
   * read: its values are exact, and batches of those go at once. The others are read (each from
   * the master serving its slot, following a slot move's redirections), then a PING on the
   * masters that answered makes sure every message published before the read executed has
   * arrived: a key with a write message among those is left to that message (the read may be
   * older or newer than it), so a value never goes back in time.
   */
  #nextBatch(): Observable<StoreEvent<Uint8Array>> {
    const events: StoreEvent<Uint8Array>[] = []
    for (;;) {
      const batch = this.#order.take(MAX_BATCH_KEYS)
      if (batch.length === 0) return from(events)
      const last = new Map<string, Unit>()
      for (const unit of batch) for (const key of keysOf(unit)) last.set(key, unit)
      const reads: string[] = []
      for (const [key, unit] of last) if (needsRead(unit)) reads.push(key)
      if (reads.length === 0) {
        events.push(...this.#writeEvents(batch))
        this.#forget()
        continue
      }
      const read = this.#read(reads).pipe(
        concatMap((results) => from(this.#readEvents(batch, last, results))),
      )
      return events.length === 0 ? read : concat(from(events), read)
    }
  }

  /** Reads the keys from their masters, then a barrier on the subscribers of those that answered. */
  #read(keys: readonly string[]): Observable<ReadResults> {
    const links = this.#links
    return defer(async () => {
      const routes = this.#slots?.routes()
      // One master: read on its subscriber (RESP3), whose reply comes after every message
      // published before the read executed: no barrier needed.
      if (!routes)
        return { results: await readValues(links.endpoint(0).sub, keys, false), answered: [] }
      const results: ReadResults = new Map()
      const answered = await readRouted(routes, keys, (key, value) => {
        results.set(key, value)
      })
      return { results, answered: [...answered] }
    }).pipe(
      concatMap(({ results, answered }) =>
        links.ping(answered.map((index) => links.endpoint(index))).pipe(map(() => results)),
      ),
      catchError((error: unknown) =>
        throwError(() => SessionEnd.gap('watch-error', 'reading notified keys failed', error)),
      ),
    )
  }

  #readEvents(
    batch: readonly Unit[],
    last: ReadonlyMap<string, Unit>,
    results: ReadResults,
  ): StoreEvent<Uint8Array>[] {
    const overtaken = this.#order.pendingWrites()
    const events = this.#writeEvents(batch)
    // Every message published before the reads executed has arrived by now.
    const until = this.#order.arrived
    const changes: Pending[] = []
    for (const [key, value] of results) {
      if (overtaken.has(key)) continue
      const change = this.#memory.read(key, value, last.get(key)?.seq ?? 0, until)
      if (change) changes.push(change)
    }
    const event = this.#event(changes)
    if (event) events.push(event)
    this.#forget()
    return events
  }

  /** Each write message of a batch as its own change event, in arrival order. */
  #writeEvents(batch: readonly Unit[]): StoreEvent<Uint8Array>[] {
    const events: StoreEvent<Uint8Array>[] = []
    for (const unit of batch) {
      if (unit.kind !== 'write' || unit.reread) continue
      const changes: Pending[] = []
      for (const write of unit.writes) {
        const change = this.#memory.written(write.key, write.value, unit.seq)
        if (change) changes.push(change)
      }
      const event = this.#event(changes)
      if (event) events.push(event)
    }
    return events
  }

  /** One change event for `changes`, at the next revision; undefined when there are none. */
  #event(changes: readonly Pending[]): StoreEvent<Uint8Array> | undefined {
    if (changes.length === 0) return undefined
    const { clock } = this.#context
    const at = clock.tick()
    if (this.#memory.records) {
      for (const change of changes) {
        clock.record(change.key, change.op === 'put' ? change.value : undefined, at)
      }
    }
    return { type: 'changes', revision: at, changes: changes.map((c) => ({ ...c, revision: at })) }
  }

  #forget(): void {
    this.#memory.forget(() => this.#order.lowestPending())
  }

  /**
   * On a Cluster, while inbox heads wait for a predecessor: a PING on every subscriber, then
   * `settle` with what arrived before the PINGs went out; again while heads still wait.
   */
  #barriers(): Observable<never> {
    const barrier = defer(() => {
      const cutoff = this.#order.arrived
      return this.#links.ping().pipe(
        tap(() => {
          this.#order.settle(cutoff)
          this.#kicks.next()
        }),
      )
    })
    return this.#kicks.pipe(
      filter(() => this.#order.waiting),
      exhaustMap(() =>
        barrier.pipe(repeat({ delay: () => (this.#order.waiting ? of(true) : EMPTY) })),
      ),
      ignoreElements(),
      catchError((error: unknown) =>
        throwError(() => SessionEnd.gap('reconnect', 'a subscriber did not answer', error)),
      ),
    )
  }

  #heartbeat(): Observable<never> {
    const every = this.#context.settings.heartbeatMs
    return timer(every, every, this.#context.scheduler).pipe(
      exhaustMap(() => this.#links.ping()),
      ignoreElements(),
      catchError((error: unknown) =>
        throwError(() =>
          SessionEnd.gap('reconnect', 'a subscriber did not answer its heartbeat', error),
        ),
      ),
    )
  }

  /** On a Cluster: ends the session when the slot map changes (a failover, a slot move). */
  #slotMapCheck(): Observable<never> {
    const probe = this.#links.endpoints[0]?.reader
    const topology = this.#topology
    if (!topology || !probe) return EMPTY
    const every = this.#context.settings.topologyCheckMs
    return timer(every, every, this.#context.scheduler).pipe(
      exhaustMap(() =>
        defer(() => from(clusterTopology(probe))).pipe(
          catchError((error: unknown) =>
            throwError(() =>
              SessionEnd.gap('reconnect', 'reading the cluster slot map failed', error),
            ),
          ),
        ),
      ),
      concatMap((current) =>
        current.signature === topology.signature
          ? EMPTY
          : throwError(() =>
              SessionEnd.gap('watch-error', 'the cluster slot map changed (failover or slot move)'),
            ),
      ),
    )
  }

  #onKeyspaceEvent(endpoint: Endpoint, channel: string, event: string): void {
    if (!channel.startsWith(this.#channelPrefix)) return
    const key = channel.slice(this.#channelPrefix.length)
    if (NON_WRITE_EVENTS.has(event) || !matchesAny(key, this.#state.prefixes)) return
    this.#order.read(endpoint.index, key)
    this.#kicks.next()
  }

  #onWriteMessage(endpoint: Endpoint, payload: Buffer): void {
    const message = decodeWriteMessage(payload)
    if (!message) return
    // On a Cluster every node relays every message; only the master that ran the write
    // delivers it in order with the write's keyspace events. A slot being moved has two (the
    // source, or the target when the key is gone from the source): its keys are read instead,
    // from both sides' messages.
    const owners = this.#topology?.owners
    const move = this.#slots?.moves.bySlot.get(message.slot)
    const reread = move !== undefined
    if (move) {
      if (endpoint.index !== move.source && endpoint.index !== move.target) return
    } else if (owners && owners[message.slot] !== endpoint.index) return
    // A message without writes under the prefixes still counts: it moves its store's sequence.
    const prefixes = this.#state.prefixes
    const writes = message.writes.filter((write) => matchesAny(write.key, prefixes))
    this.#order.write(endpoint.index, { ...message, writes }, reread)
    this.#kicks.next()
  }
}
