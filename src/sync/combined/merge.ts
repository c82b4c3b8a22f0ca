import { Observable, Subscription, timer, type SchedulerLike, type Subscriber } from 'rxjs'
import { valuesEqual } from '../../core/equal.js'
import type { Change, KeyValue, StoreEvent } from '../../core/events.js'
import type { Revision } from '../../core/revision.js'
import { compareKeys } from '../../internal/order.js'
import { stamp, type CombinedClock } from './clock.js'
import { mergeSorted } from './sorted.js'
import { SourceView } from './view.js'
import type { SourceSet } from './sources.js'

/** What a combined watch reads: which sources, under which prefixes, and which keys count. */
export interface WatchPlan {
  /** For each source to watch (by index), the prefixes its watch covers. */
  readonly prefixes: ReadonlyMap<number, readonly string[]>
  /**
   * For the sources that may hold keys outside the combined view under their prefixes (a routed
   * source with a longer route of another source under its prefix), which keys belong to it.
   */
  readonly filters: ReadonlyMap<number, (key: string) => boolean>
  /**
   * The caller asked for a listing after each reconnection (`WatchOptions.relistOnReconnect`):
   * the sources are asked the same, and a source's `reconnect` snapshot becomes a combined one.
   */
  readonly relistOnReconnect?: boolean
}

/** What every watch of one combined store shares. */
export interface MergeContext<V> {
  readonly sources: SourceSet<V>
  readonly clock: CombinedClock
  /** How long the first snapshot waits for every source; `Infinity` for ever. */
  readonly startTimeoutMs: number
  readonly scheduler: SchedulerLike
}

/** The visible entry of a key: the source it comes from and that source's item. */
interface Visible<V> {
  readonly source: number
  readonly item: KeyValue<V>
}

/**
 * A combined watch: it watches each source of the plan and merges them into one stream of
 * store events over the combined view, where a key's value is that of the highest source that
 * holds it (a routed store's sources hold disjoint keys).
 *
 * - The first snapshot comes when every source has given its first one, or at the start
 *   timeout with the sources that answered (the late ones are reported degraded; their keys
 *   come as changes when they answer).
 * - A source's change batch becomes one batch of what it changed in the combined view (a
 *   change in a hidden layer is no change; a delete in a higher layer reveals the lower value
 *   as a put), with `prev` the value the combined view held.
 * - A later snapshot of one source (its gap, reconnect or relist) is not a combined snapshot:
 *   it becomes one batch of the differences it made to the combined view (deletes carry the last
 *   value), so the other sources' changes keep flowing and consumers get only the differences.
 *   With `relistOnReconnect`, a source's `reconnect` snapshot is a combined snapshot (cause
 *   `reconnect`) of the whole view instead.
 *
 * ```
 * source a:   S(a/1=1)-------c(a/1=2)---------------S(a/1=2,a/3=3)--
 * source b:   --------S(b/1=1)------------c(b/1=x)------------------
 * combined:   --------S(a/1=1,b/1=1)--c(a/1:1>2)--c(b/1:1>x)--c(a/3:x>3)
 * ```
 */
export function mergeWatch<V>(
  context: MergeContext<V>,
  plan: WatchPlan,
): Observable<StoreEvent<V>> {
  return new Observable<StoreEvent<V>>((subscriber) =>
    new Merger(context, plan, subscriber).start(),
  )
}

class Merger<V> {
  /** Each source's part of the view: its items that belong to the combined view. */
  readonly #views: SourceView<V>[]
  /** Watched sources that have not given their first snapshot yet. */
  readonly #pending = new Set<number>()
  /** Releases of the sources reported late. */
  readonly #late = new Map<number, () => void>()
  #started = false
  #deadline: Subscription | undefined
  /** Events wait here while one is being delivered, so a reentrant event never overtakes it. */
  readonly #queue: StoreEvent<V>[] = []
  #draining = false

  constructor(
    private readonly context: MergeContext<V>,
    private readonly plan: WatchPlan,
    private readonly subscriber: Subscriber<StoreEvent<V>>,
  ) {
    this.#views = context.sources.stores.map(() => new SourceView<V>())
  }

  start(): Subscription {
    const { sources, startTimeoutMs, scheduler } = this.context
    const subscription = sources.hold()
    subscription.add(() => {
      for (const release of this.#late.values()) release()
      this.#late.clear()
    })
    for (const index of this.plan.prefixes.keys()) this.#pending.add(index)
    const relist = this.plan.relistOnReconnect === true ? { relistOnReconnect: true } : {}
    for (const [index, prefixes] of this.plan.prefixes) {
      if (this.subscriber.closed) break
      const store = sources.stores[index]
      if (store === undefined) continue
      subscription.add(
        store.watch(prefixes, relist).subscribe({
          next: (event) => {
            this.#guard(() => {
              this.#receive(index, event)
            })
          },
          error: (error: unknown) => {
            this.subscriber.error(error)
          },
          // A source's watch ends only when the source closes, which closes the combined store.
        }),
      )
    }
    if (!this.#started && this.#pending.size === 0) this.#open()
    else if (!this.#started && Number.isFinite(startTimeoutMs)) {
      this.#deadline = timer(startTimeoutMs, scheduler).subscribe(() => {
        this.#guard(() => {
          this.#open()
        })
      })
      subscription.add(this.#deadline)
    }
    return subscription
  }

  #guard(work: () => void): void {
    try {
      work()
    } catch (error) {
      this.subscriber.error(error)
    }
  }

  #receive(index: number, event: StoreEvent<V>): void {
    const view = this.#views[index]
    if (view === undefined) return
    const accepts = this.plan.filters.get(index)
    if (event.type === 'snapshot') {
      const fresh = new SourceView(
        accepts === undefined ? event.items : event.items.filter((item) => accepts(item.key)),
      )
      const first = this.#pending.delete(index)
      if (!this.#started) {
        this.#views[index] = fresh
        if (this.#pending.size === 0) this.#open()
        return
      }
      if (first) {
        this.#late.get(index)?.()
        this.#late.delete(index)
      }
      this.#relist(
        index,
        fresh,
        event.cause === 'reconnect' && this.plan.relistOnReconnect === true,
      )
      return
    }
    if (!this.#started) {
      for (const change of event.changes) {
        if (accepts !== undefined && !accepts(change.key)) continue
        if (change.op === 'put') view.set(asItem(change))
        else view.delete(change.key)
      }
      return
    }
    const next = stamp(this.context.clock)
    const changes: Change<V>[] = []
    for (const change of event.changes) {
      if (accepts !== undefined && !accepts(change.key)) continue
      const before = this.#visible(change.key)
      if (change.op === 'put') view.set(asItem(change))
      else view.delete(change.key)
      const out = this.#change(change.key, before, this.#visible(change.key), next)
      if (out !== undefined) changes.push(out)
    }
    if (changes.length > 0) this.#emit({ type: 'changes', revision: next(), changes })
  }

  /** The first snapshot: every source's part, merged. */
  #open(): void {
    if (this.#started) return
    this.#started = true
    this.#deadline?.unsubscribe()
    const { clock, sources, startTimeoutMs } = this.context
    for (const index of this.#pending) this.#late.set(index, sources.late(index, startTimeoutMs))
    this.#emit({ ...this.#merged(clock.tick()), cause: 'startup' })
  }

  /**
   * A source's new snapshot replaces its part; the differences in the combined view go out, or
   * with `whole` the combined view as a snapshot with cause `reconnect`.
   */
  #relist(index: number, view: SourceView<V>, whole: boolean): void {
    const old = (this.#views[index] ?? new SourceView<V>()).map()
    const fresh = view.map()
    const touched: string[] = []
    for (const [key, item] of fresh) {
      const held = old.get(key)
      if (held === undefined || !valuesEqual(held.value, item.value)) touched.push(key)
      else if (held.revision !== item.revision) {
        this.context.clock.carry(key, index, held.revision, item.revision)
      }
    }
    for (const key of old.keys()) if (!fresh.has(key)) touched.push(key)
    const before = touched.map((key) => this.#visible(key))
    this.#views[index] = view
    const next = stamp(this.context.clock)
    const changes: Change<V>[] = []
    touched.forEach((key, i) => {
      const out = this.#change(key, before[i], this.#visible(key), next)
      if (out !== undefined) changes.push(out)
    })
    if (whole) {
      this.#emit({ ...this.#merged(next()), cause: 'reconnect' })
      return
    }
    if (changes.length === 0) return
    changes.sort((a, b) => compareKeys(a.key, b.key))
    this.#emit({ type: 'changes', revision: next(), changes })
  }

  /** The combined view at `at`: each key's visible item, at the revision the clock gave it. */
  #merged(at: Revision): { type: 'snapshot'; revision: Revision; items: KeyValue<V>[] } {
    const { clock } = this.context
    const next = () => at
    const items = mergeSorted(
      this.#views.map((view) => view.items()),
      (item) => item.key,
      (item, source): KeyValue<V> => ({
        key: item.key,
        value: item.value,
        revision: clock.observe(item.key, source, item.revision, next),
      }),
    )
    return { type: 'snapshot', revision: at, items }
  }

  #visible(key: string): Visible<V> | undefined {
    for (let source = this.#views.length - 1; source >= 0; source--) {
      const item = this.#views[source]?.get(key)
      if (item !== undefined) return { source, item }
    }
    return undefined
  }

  /** The change of the combined view from `before` to `after`, if it changed. */
  #change(
    key: string,
    before: Visible<V> | undefined,
    after: Visible<V> | undefined,
    next: () => Revision,
  ): Change<V> | undefined {
    const { clock } = this.context
    if (after === undefined) {
      if (before === undefined) return undefined
      clock.forget(key)
      return { op: 'delete', key, prev: before.item.value, revision: next() }
    }
    if (before !== undefined) {
      if (before.item === after.item) return undefined
      // Another layer now shows the same value: nothing changed for a reader.
      if (before.source !== after.source && valuesEqual(before.item.value, after.item.value)) {
        return undefined
      }
    }
    const revision = clock.observe(key, after.source, after.item.revision, next)
    return before === undefined
      ? { op: 'put', key, value: after.item.value, revision }
      : { op: 'put', key, value: after.item.value, prev: before.item.value, revision }
  }

  #emit(event: StoreEvent<V>): void {
    this.#queue.push(event)
    if (this.#draining) return
    this.#draining = true
    try {
      for (let next = this.#queue.shift(); next !== undefined; next = this.#queue.shift()) {
        this.subscriber.next(next)
      }
    } finally {
      this.#draining = false
    }
  }
}

/** A source's put as the item its view holds (at the source's revision). */
function asItem<V>(change: Change<V> & { readonly op: 'put' }): KeyValue<V> {
  return { key: change.key, value: change.value, revision: change.revision }
}
