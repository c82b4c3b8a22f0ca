import type { Subscriber } from 'rxjs'
import type { Change, StoreEvent } from '../../core/events.js'
import type { Revision } from '../../core/revision.js'
import { matchesAny } from '../../core/snapshot.js'

/** One watch: its prefixes and where its events go. */
interface Watcher<V> {
  readonly prefixes: readonly string[]
  readonly subscriber: Subscriber<StoreEvent<V>>
}

/**
 * The watches of a memory store and the delivery of their events, synchronously within the write
 * that made them. Events wait in one queue while another is being delivered: a watcher that writes
 * from its handler gets its own event after the current one has reached every watcher, so each
 * watcher sees events in revision order.
 */
export class Watchers<V> {
  readonly #watchers = new Set<Watcher<V>>()
  readonly #queue: { readonly watcher: Watcher<V>; readonly event: StoreEvent<V> }[] = []
  /** An event is being delivered: later ones wait in the queue. */
  #draining = false

  /**
   * Adds a watch of `prefixes` whose first events are `first` (a snapshot, or the history a
   * resumed watch missed). Through the queue: a watch started from another watcher's handler
   * gets them right after that handler returns, before any later event. Returns what removes
   * the watch.
   */
  add(
    prefixes: readonly string[],
    subscriber: Subscriber<StoreEvent<V>>,
    first: readonly StoreEvent<V>[],
  ): () => void {
    const watcher: Watcher<V> = { prefixes, subscriber }
    this.#watchers.add(watcher)
    for (const event of first) this.#queue.push({ watcher, event })
    this.#drain()
    return () => {
      this.#watchers.delete(watcher)
    }
  }

  /** Gives each watcher the changes under its prefixes, as one `changes` event at `at`. */
  publish(at: Revision, changes: readonly Change<V>[]): void {
    // Only enqueues (calls no handler), so the set of watchers is the one at commit time.
    for (const watcher of this.#watchers) {
      const mine = changes.filter((change) => matchesAny(change.key, watcher.prefixes))
      if (mine.length > 0) {
        this.#queue.push({ watcher, event: { type: 'changes', revision: at, changes: mine } })
      }
    }
    this.#drain()
  }

  /** Completes every watch and drops the events still waiting. */
  completeAll(): void {
    const active = [...this.#watchers]
    this.#watchers.clear()
    this.#queue.length = 0
    for (const watcher of active) watcher.subscriber.complete()
  }

  #drain(): void {
    if (this.#draining) return
    this.#draining = true
    try {
      for (let item = this.#queue.shift(); item !== undefined; item = this.#queue.shift()) {
        if (this.#watchers.has(item.watcher)) item.watcher.subscriber.next(item.event)
      }
    } finally {
      this.#draining = false
    }
  }
}
