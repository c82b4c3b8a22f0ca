import { BehaviorSubject, Observable, Subscription, combineLatest, map } from 'rxjs'
import { ClosedError, UnavailableError, type DatasyncError } from '../../core/errors.js'
import type { KvStore, StoreStatus } from '../../core/store.js'
import { StoreEdge } from '../../internal/edge.js'
import { asDatasyncError, inOperation } from '../../internal/errors.js'
import type { HealthPart } from '../../internal/store-health.js'
import { CLOSED, CONNECTING, statusStream } from '../../internal/status.js'
import type { CombinedSource, NamedSource, SourceInput } from './types.js'

/** What is known of one source. */
interface Tracked {
  /** The store's own status, as last reported. */
  own: StoreStatus
  /** How many watches wait past their start timeout for its first snapshot. */
  late: number
  lateError: DatasyncError | undefined
  readonly effective: BehaviorSubject<StoreStatus>
  readonly part: HealthPart
}

/**
 * The sources of a combined store and their health. Each source's status is its store's own,
 * or `degraded` while a watch waits for it past the start timeout; the combined store's status
 * follows one rule over all of them (`StoreHealth`: degraded while any source is). Sources'
 * status streams are followed only while something holds the combined store (a watch, or a
 * subscriber of a status stream): subscribing to a server store's status may connect it, and
 * nothing connects before it is used (P7).
 */
export class SourceSet<V> {
  readonly edge: StoreEdge
  readonly stores: readonly KvStore<V>[]
  readonly names: readonly string[]
  readonly sources: readonly CombinedSource<V>[]
  readonly sources$: Observable<Readonly<Record<string, StoreStatus>>>
  readonly status$: Observable<StoreStatus>
  readonly #tracked: readonly Tracked[]
  #holders = 0
  #following: Subscription | undefined

  constructor(
    readonly name: string,
    inputs: readonly NamedSource<V>[],
  ) {
    this.edge = new StoreEdge({
      name,
      // Sources' errors are the library's already, and each source reports its own health.
      mapError: (raw) => inOperation(asDatasyncError(raw)),
      operationsReportHealth: false,
    })
    this.stores = inputs.map((input) => input.store)
    this.names = inputs.map((input) => input.name)
    const tracked = inputs.map((): Tracked => ({
      own: CONNECTING,
      late: 0,
      lateError: undefined,
      effective: new BehaviorSubject<StoreStatus>(CONNECTING),
      part: this.edge.health.part(),
    }))
    this.#tracked = tracked
    this.sources = inputs.map((input, index) => ({
      name: input.name,
      store: input.store,
      status$: this.#held(
        statusStream(
          tracked[index]?.effective ?? new BehaviorSubject(CLOSED),
          () => this.edge.closed,
        ),
      ),
    }))
    this.sources$ = combineLatest(this.sources.map((source) => source.status$)).pipe(
      map((statuses: readonly StoreStatus[]) => {
        const byName: Record<string, StoreStatus> = {}
        statuses.forEach((status, i) => (byName[this.names[i] ?? String(i)] = status))
        return byName
      }),
    )
    this.status$ = this.#held(this.edge.health.status$)
  }

  /** `'defaults' (filedb)`: a source as messages name it. */
  describe(index: number): string {
    return `'${this.names[index] ?? '?'}' (${this.stores[index]?.name ?? '?'})`
  }

  /** Follows the sources' status while the returned subscription lives. */
  hold(): Subscription {
    if (this.#holders++ === 0 && !this.edge.closed) {
      const following = new Subscription()
      this.#following = following
      this.stores.forEach((store, index) => {
        following.add(
          store.status$.subscribe({
            next: (status) => {
              this.#ownStatus(index, status)
            },
            // A status stream that fails says nothing more: the source is as good as closed.
            error: (error: unknown) => {
              this.#ownStatus(index, { state: 'closed', error: asDatasyncError(error) })
            },
          }),
        )
      })
    }
    return new Subscription(() => {
      if (--this.#holders === 0) {
        this.#following?.unsubscribe()
        this.#following = undefined
      }
    })
  }

  /**
   * A watch has waited `ms` for the source's first snapshot: the source counts as degraded until
   * the returned function is called (the snapshot came, or the watch ended).
   */
  late(index: number, ms: number): () => void {
    const tracked = this.#tracked[index]
    if (tracked === undefined) return () => undefined
    tracked.late++
    tracked.lateError = new UnavailableError(
      `source ${this.describe(index)} of the ${this.name} store`,
      `no snapshot within ${ms} ms; its keys arrive as changes when it answers`,
    )
    this.#publish(index)
    let released = false
    return () => {
      if (released) return
      released = true
      tracked.late--
      this.#publish(index)
    }
  }

  /** Closes the combined store and every source. */
  async close(error?: DatasyncError): Promise<void> {
    if (this.edge.close(error)) {
      this.#following?.unsubscribe()
      this.#following = undefined
      for (const tracked of this.#tracked) {
        tracked.effective.next(CLOSED)
        tracked.effective.complete()
      }
    }
    await Promise.all(this.stores.map((store) => store.close()))
  }

  #held<T>(source: Observable<T>): Observable<T> {
    return new Observable<T>((subscriber) => {
      const holding = this.hold()
      holding.add(source.subscribe(subscriber))
      return holding
    })
  }

  #ownStatus(index: number, status: StoreStatus): void {
    const tracked = this.#tracked[index]
    if (tracked === undefined || this.edge.closed) return
    tracked.own = status
    if (status.state === 'closed') {
      // A source that ends (closed by hand, or by a fatal error) ends the combined store: it
      // cannot be kept in sync any more, and only a fatal error ends a stream (P6).
      void this.close(
        status.error ?? new ClosedError(`source ${this.describe(index)} of the ${this.name} store`),
      )
      return
    }
    this.#publish(index)
  }

  #publish(index: number): void {
    const tracked = this.#tracked[index]
    if (tracked === undefined || this.edge.closed) return
    const own = tracked.own
    const effective: StoreStatus =
      own.state !== 'degraded' && tracked.late > 0 && tracked.lateError !== undefined
        ? { state: 'degraded', error: tracked.lateError }
        : own
    if (effective.state === 'ready') tracked.part.up()
    else if (effective.state === 'degraded') {
      tracked.part.down(effective.error ?? new UnavailableError(this.names[index] ?? '?', 'down'))
    } else tracked.part.gone()
    const current = tracked.effective.value
    if (current.state !== effective.state || current.error !== effective.error) {
      tracked.effective.next(effective)
    }
  }
}

/**
 * Names the sources: a named source keeps its name, a bare store takes its own `name`, numbered
 * from the second one on (`memory`, `memory#2`). The same store given twice is one source.
 *
 * @throws TypeError when two different stores are given the same name.
 */
export function nameSources<V>(
  what: string,
  inputs: readonly SourceInput<V>[],
): { sources: NamedSource<V>[]; indexOf: (input: SourceInput<V>) => number } {
  const sources: NamedSource<V>[] = []
  const byStore = new Map<KvStore<V>, number>()
  const storeOf = (input: SourceInput<V>) => ('store' in input ? input.store : input)
  for (const input of inputs) {
    const store = storeOf(input)
    if (typeof store !== 'object' || typeof store.watch !== 'function') {
      throw new TypeError(`${what}: expected each source to be a KvStore or { name, store }`)
    }
    if (byStore.has(store)) continue
    let name = 'store' in input ? input.name : store.name
    if (!('store' in input)) {
      for (let n = 2; sources.some((source) => source.name === name); n++) {
        name = `${store.name}#${n}`
      }
    }
    if (typeof name !== 'string' || name === '') {
      throw new TypeError(`${what}: expected a non-empty source name, got ${JSON.stringify(name)}`)
    }
    if (sources.some((source) => source.name === name)) {
      throw new TypeError(`${what}: two sources are named '${name}'`)
    }
    byStore.set(store, sources.length)
    sources.push({ name, store })
  }
  return { sources, indexOf: (input) => byStore.get(storeOf(input)) ?? -1 }
}
