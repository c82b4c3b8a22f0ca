import type { WrittenKey } from './messages.js'

/** A keyspace event for a key: its value must be read. */
export interface ReadUnit {
  /** Its place in the order of arrival, over every master (from 1). */
  readonly seq: number
  /** The master that published it (its index in the session's slot map). */
  readonly endpoint: number
  readonly kind: 'read'
  readonly key: string
}

/** The message of a write made through a store: the exact values of one write. */
export interface WriteUnit {
  readonly seq: number
  readonly endpoint: number
  readonly kind: 'write'
  readonly writes: readonly WrittenKey[]
  /** The writing store's id. */
  readonly writer: string
  /** The write's number in its store: each store numbers its writes 1, 2, 3 … */
  readonly sequence: bigint
  /**
   * Its values are not to be trusted, only its keys read: a write to a Cluster slot being moved
   * (it may have run on the source or the target, and arrives from both, in no order with the
   * other's keyspace events).
   */
  readonly reread: boolean
}

/** Something that arrived on a subscriber connection. */
export type Unit = ReadUnit | WriteUnit

/** Whether the keys of a unit must be read (a keyspace event, or a write to reread). */
export function needsRead(unit: Unit): boolean {
  return unit.kind === 'read' || unit.reread
}

/** The keys a unit names. */
export function keysOf(unit: Unit): readonly string[] {
  return unit.kind === 'read' ? [unit.key] : unit.writes.map((write) => write.key)
}

/**
 * The order in which a watch session turns what arrives into change events. It does no I/O: the
 * session tells it what arrived and when a barrier (a PING on every subscriber) went out and was
 * answered, and takes batches from its queue.
 *
 * With one master everything goes to the queue as it arrives. On a Cluster each master's
 * messages arrive on their own connection, and the order between two connections means nothing:
 * a store's write to a key on one master may arrive after its next write, to a key on another.
 * So each master's arrivals wait in an inbox of their own, and the inboxes are merged, never
 * reordered within one, so that each store's messages go in the order of their sequence numbers:
 * a message whose predecessor has not arrived waits ({@link waiting}). A barrier then tells
 * whether the predecessor is still coming (it was published before the PING) or will never come
 * (its write failed before it published, or it ran concurrently and is simply later): see
 * {@link settle}.
 */
export class ArrivalOrder {
  /** What arrived from each master and is not in the queue yet, in arrival order. */
  readonly #inboxes: Unit[][]
  /** Units in the order they are to be turned into events. */
  readonly #queue: Unit[] = []
  /** The next sequence number expected from each writing store. */
  readonly #expected = new Map<string, bigint>()
  /** The `seq` of the last arrival. */
  #seq = 0

  /** An order for a session on `masters` masters (1 for a node or a Sentinel master). */
  constructor(masters: number) {
    this.#inboxes = Array.from({ length: masters }, () => [])
  }

  /** How many units arrived so far: the `seq` of the last one. */
  get arrived(): number {
    return this.#seq
  }

  /** Whether units wait in an inbox for a predecessor: a barrier would settle them. */
  get waiting(): boolean {
    return this.#inboxes.some((inbox) => inbox.length > 0)
  }

  /** Whether the queue holds units to take. */
  get queued(): boolean {
    return this.#queue.length > 0
  }

  /** A keyspace event for `key` arrived from master `endpoint`. */
  read(endpoint: number, key: string): void {
    this.#arrive(endpoint, { seq: ++this.#seq, endpoint, kind: 'read', key })
  }

  /** A store's write message arrived from master `endpoint` (`reread`: see {@link WriteUnit}). */
  write(
    endpoint: number,
    message: Pick<WriteUnit, 'writes' | 'writer' | 'sequence'>,
    reread = false,
  ): void {
    const { writes, writer, sequence } = message
    const seq = ++this.#seq
    this.#arrive(endpoint, { seq, endpoint, kind: 'write', writes, writer, sequence, reread })
  }

  /**
   * Takes the next batch from the queue, in order: units up to `maxKeys` keys in all (at least
   * one unit); empty when nothing is queued.
   */
  take(maxKeys = Infinity): Unit[] {
    let count = 0
    let keys = 0
    for (const unit of this.#queue) {
      const size = keysOf(unit).length
      if (count > 0 && keys + size > maxKeys) break
      keys += size
      count++
    }
    return this.#queue.splice(0, count)
  }

  /** The keys of the write messages queued or waiting: their values are newer than a read now. */
  pendingWrites(): Set<string> {
    const keys = new Set<string>()
    for (const units of [this.#queue, ...this.#inboxes]) {
      for (const unit of units) {
        if (unit.kind === 'write' && !unit.reread) {
          for (const write of unit.writes) keys.add(write.key)
        }
      }
    }
    return keys
  }

  /** The `seq` of the earliest unit queued or waiting; Infinity when none is. */
  lowestPending(): number {
    let lowest = Infinity
    for (const units of [this.#queue, ...this.#inboxes]) {
      for (const unit of units) lowest = Math.min(lowest, unit.seq)
    }
    return lowest
  }

  /**
   * A barrier whose PINGs went out when `cutoff` units had arrived was answered: everything
   * published before each master answered its PING has arrived. That is a cut per master, not
   * one moment for all: a message that arrived while the PINGs were out may have been published
   * after another master answered, before its predecessor (sent to that master) was published.
   * So only messages that arrived before the PINGs went out (`seq <= cutoff`) count here: their
   * predecessors were published before they were, so before every PING, and have arrived if they
   * ever will. A store whose next message is missing then continues from the lowest sequence
   * number among those; if the heads still block each other (writes that ran concurrently), the
   * earliest arrived of them goes first. Later arrivals wait for the next barrier.
   */
  settle(cutoff: number): void {
    const lowest = new Map<string, bigint>()
    for (const inbox of this.#inboxes) {
      for (const unit of inbox) {
        if (unit.kind !== 'write' || unit.seq > cutoff) continue
        const next = this.#expected.get(unit.writer)
        if (next !== undefined && unit.sequence < next) continue
        const low = lowest.get(unit.writer)
        if (low === undefined || unit.sequence < low) lowest.set(unit.writer, unit.sequence)
      }
    }
    for (const [writer, low] of lowest) this.#expected.set(writer, low)
    if (!this.#inboxes.some((inbox) => inbox[0] && this.#eligible(inbox[0]))) {
      let first: Unit[] | undefined
      for (const inbox of this.#inboxes) {
        const head = inbox[0]
        if (head && head.seq <= cutoff && (!first || head.seq < (first[0]?.seq ?? Infinity))) {
          first = inbox
        }
      }
      if (first) this.#take(first)
    }
    this.#merge()
  }

  /**
   * The listing is done and every message published before its barrier has arrived: what
   * arrived so far may be older or newer than the listing, so it is queued again as a read of
   * each key it names (once per key, at its last arrival), rather than trusting the messages'
   * values. Each store's messages so far count as seen: its next one is expected after them.
   */
  rereadAll(): void {
    const arrived = [...this.#queue.splice(0), ...this.#inboxes.flatMap((inbox) => inbox.splice(0))]
    const reread = new Map<string, ReadUnit>()
    for (const unit of arrived.sort((a, b) => a.seq - b.seq)) {
      if (unit.kind === 'write') this.#passed(unit)
      for (const key of keysOf(unit)) {
        reread.set(key, { seq: unit.seq, endpoint: unit.endpoint, kind: 'read', key })
      }
    }
    this.#queue.push(...reread.values())
  }

  #arrive(endpoint: number, unit: Unit): void {
    const inbox = this.#inboxes[endpoint]
    if (inbox === undefined) throw new RangeError(`no master ${endpoint} in this session`)
    inbox.push(unit)
    this.#merge()
  }

  /** A read may always go; a store's message when it is the next one of its store. */
  #eligible(unit: Unit): boolean {
    if (unit.kind === 'read' || this.#inboxes.length === 1) return true
    const next = this.#expected.get(unit.writer)
    return next !== undefined && unit.sequence <= next
  }

  /** Moves the inbox heads that may go to the queue, the earliest arrived first. */
  #merge(): void {
    for (;;) {
      let best: Unit[] | undefined
      for (const inbox of this.#inboxes) {
        const head = inbox[0]
        if (head && this.#eligible(head) && (!best || head.seq < (best[0]?.seq ?? Infinity))) {
          best = inbox
        }
      }
      if (!best) return
      this.#take(best)
    }
  }

  #take(inbox: Unit[]): void {
    const unit = inbox.shift()
    if (unit === undefined) return
    if (unit.kind === 'write') this.#passed(unit)
    this.#queue.push(unit)
  }

  /** A store's message went to the queue: its next one is expected after it. */
  #passed(unit: WriteUnit): void {
    const next = this.#expected.get(unit.writer)
    if (next === undefined || unit.sequence >= next)
      this.#expected.set(unit.writer, unit.sequence + 1n)
  }
}
