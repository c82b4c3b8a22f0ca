/**
 * The checker of one schedule: every consumer's events against the writer's history.
 *
 * Per consumer it verifies: every delivered value and delete is a real write of that key (see
 * history.ts), in per-key commit order, never the same write twice; each change's `prev` is the
 * value the consumer last received; revisions per key only go up; no change before its own
 * resync was acknowledged, and no live change while any consumer's resync is unacknowledged (P3);
 * at quiescence its state equals the store (the engine compares, see engine.ts).
 */
import type { Subscription } from 'rxjs'
import type { Consumer, ConsumerEvent, Revision } from '../../src/index.js'
import { indexOfPut, nextDelete, type HistoryView } from './history.js'
import type { Random } from '../conformance/random.js'

/** How a consumer acknowledges. */
export interface Behaviour {
  /** `fast` acknowledges in its handler; `slow` after a random delay up to `maxDelayMs`. */
  readonly pace: 'fast' | 'slow'
  readonly maxDelayMs: number
}

/**
 * What the consumers of one schedule share: the resyncs handed out and not yet acknowledged (P3).
 * A new round (the orchestrator's `round` activity) supersedes the resyncs of the round before:
 * those no longer hold anyone back (the new round resyncs their consumers again, in order).
 */
export class Rounds {
  private readonly pending = new Map<string, { superseded: boolean }>()
  /** Consumers that have not had an event since the round started: the next is their step. */
  private readonly unstepped = new Set<string>()
  constructor(private readonly order: () => readonly string[]) {}
  open(name: string): void {
    this.pending.set(name, { superseded: false })
  }
  settle(name: string): void {
    this.pending.delete(name)
  }
  roundStarted(): void {
    for (const entry of this.pending.values()) entry.superseded = true
    for (const name of this.order()) this.unstepped.add(name)
  }
  /**
   * The consumer whose unacknowledged resync should have held back this change to `name`, if
   * any: one earlier in registration order (the round goes consumer by consumer), or a later
   * one unless this is the first event `name` gets in the round (its own step: a late
   * registration's round gives the consumers before it their differences with reason `live`).
   */
  blocking(name: string): string | undefined {
    const step = this.unstepped.delete(name)
    const order = this.order()
    const mine = order.indexOf(name)
    for (const [other, entry] of this.pending) {
      if (other === name || entry.superseded) continue
      if (order.indexOf(other) < mine || !step) return other
    }
    return undefined
  }

  /** `name` got an event (a resync is always its round step). */
  stepped(name: string): void {
    this.unstepped.delete(name)
  }
}

/**
 * One consumer name across its registrations and subscriptions. Its state is what its events
 * built; `positions` (where in each key's history it has got to) survives re-registration, since
 * the store's history never goes back for anyone.
 */
export class ConsumerCheck {
  readonly state = new Map<string, string>()
  readonly violations: string[] = []
  events = 0
  changes = 0
  private readonly positions = new Map<string, number>()
  private readonly revisions = new Map<string, Revision>()
  private synced = false
  private resyncPending = false
  private subscription: Subscription | undefined
  private readonly timers = new Set<ReturnType<typeof setTimeout>>()
  private generation = 0

  constructor(
    readonly name: string,
    private readonly history: HistoryView,
    private readonly rounds: Rounds,
    private readonly random: Random,
    private readonly behaviour: Behaviour,
    private readonly clock: () => number,
  ) {}

  /** Starts listening to `consumer` (a fresh subscription: a resync must come first). */
  listen(consumer: Consumer<string>): void {
    this.stop()
    this.generation += 1
    this.synced = false
    this.state.clear()
    this.revisions.clear()
    this.subscription = consumer.events$.subscribe({
      next: (event) => {
        this.onEvent(event)
      },
      error: (error: unknown) => {
        this.fail(`events$ errored: ${String(error)}`)
      },
    })
  }

  /** Stops listening; acknowledgements not yet given are never given. */
  stop(): void {
    // Settled first: leaving lets the round go on to the others at once, inside unsubscribe.
    this.resyncPending = false
    this.rounds.settle(this.name)
    this.generation += 1
    this.subscription?.unsubscribe()
    this.subscription = undefined
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
  }

  get listening(): boolean {
    return this.subscription !== undefined
  }

  private fail(message: string): void {
    this.violations.push(`consumer '${this.name}' at ${this.clock()} ms: ${message}`)
  }

  private onEvent(event: ConsumerEvent<string>): void {
    this.events += 1
    if (process.env.CHAOS_TRACE === '1') {
      const body =
        event.kind === 'resync'
          ? event.items.map(
              (item) => `${item.key.split('/').slice(1).join('/')}=${item.value}@${item.revision}`,
            )
          : event.changes.map(
              (c) =>
                `${c.op} ${c.key.split('/').slice(1).join('/')}${c.op === 'put' ? `=${c.value}` : ''} prev ${c.prev}@${c.revision}`,
            )
      console.log(
        `  ${this.clock()} ms ${this.name} ${event.kind} (${event.reason}) ${body.join(', ')}`,
      )
    }
    if (event.kind === 'resync') {
      this.rounds.stepped(this.name)
      this.onResync(event.items, event.reason)
    } else this.onChange(event)
    this.acknowledge(event)
  }

  private acknowledge(event: ConsumerEvent<string>): void {
    const isResync = event.kind === 'resync'
    if (isResync) {
      this.resyncPending = true
      this.rounds.open(this.name)
    }
    const settle = () => {
      if (isResync) {
        this.resyncPending = false
        this.rounds.settle(this.name)
      }
      event.done()
    }
    if (this.behaviour.pace === 'fast') {
      settle()
      return
    }
    const generation = this.generation
    const timer = setTimeout(
      () => {
        this.timers.delete(timer)
        if (generation === this.generation) settle()
      },
      this.random.int(this.behaviour.maxDelayMs + 1),
    )
    this.timers.add(timer)
  }

  private onResync(
    items: readonly { key: string; value: string; revision: Revision }[],
    reason: string,
  ): void {
    const before = new Map(this.state)
    this.synced = true
    this.state.clear()
    this.revisions.clear()
    for (const item of items) {
      if (this.state.has(item.key)) this.fail(`resync (${reason}): key '${item.key}' twice`)
      this.state.set(item.key, item.value)
      this.revisions.set(item.key, item.revision)
      const entries = this.history.entries(item.key)
      const at = indexOfPut(entries, item.value)
      const last = this.positions.get(item.key) ?? -1
      if (at < 0) this.fail(`resync (${reason}): '${item.key}' = '${item.value}' was never written`)
      else if (at < last) {
        this.fail(
          `resync (${reason}): '${item.key}' = '${item.value}' is older than what it saw before (${describe(entries, last)})`,
        )
      } else this.positions.set(item.key, at)
    }
    // A key the consumer held that the resync leaves out must have been deleted since.
    for (const key of before.keys()) {
      if (this.state.has(key)) continue
      const entries = this.history.entries(key)
      const at = nextDelete(entries, this.positions.get(key) ?? -1)
      if (at < 0)
        this.fail(
          `resync (${reason}): '${key}' left out but never deleted after '${before.get(key)}'`,
        )
      else this.positions.set(key, at)
    }
  }

  private onChange(event: ConsumerEvent<string> & { kind: 'change' }): void {
    if (!this.synced)
      this.fail(`change (${event.reason}) before the first resync of this subscription`)
    if (this.resyncPending) this.fail(`change (${event.reason}) before its resync was acknowledged`)
    const other = this.rounds.blocking(this.name)
    if (other !== undefined) {
      this.fail(`change (${event.reason}) while '${other}' has not acknowledged its resync`)
    }
    for (const change of event.changes) {
      this.changes += 1
      const { key } = change
      const held = this.state.get(key)
      if (change.prev !== held) {
        this.fail(`'${key}': prev '${change.prev}' is not the value last received ('${held}')`)
      }
      const lastRevision = this.revisions.get(key)
      if (lastRevision !== undefined && change.revision <= lastRevision) {
        this.fail(`'${key}': revision ${change.revision} after ${lastRevision}`)
      }
      this.revisions.set(key, change.revision)
      const entries = this.history.entries(key)
      const last = this.positions.get(key) ?? -1
      if (change.op === 'put') {
        const at = indexOfPut(entries, change.value)
        // The same value again at a later revision is a write committed twice: a client retried
        // a put whose answer a fault lost (etcd3 retries unavailable calls). The same revision
        // again is caught above.
        const retried = at === last && lastRevision !== undefined && change.revision > lastRevision
        if (at < 0) this.fail(`'${key}': put of '${change.value}', never written`)
        else if (at <= last && !retried) {
          this.fail(
            `'${key}': put of '${change.value}' ${at === last ? 'delivered twice' : 'out of commit order'} (it saw ${describe(entries, last)})`,
          )
        } else this.positions.set(key, at)
        this.state.set(key, change.value)
      } else {
        const at = nextDelete(entries, last)
        if (at < 0)
          this.fail(`'${key}': delete, but no delete of it after ${describe(entries, last)}`)
        else this.positions.set(key, at)
        if (held === undefined) this.fail(`'${key}': delete of a key not held`)
        this.state.delete(key)
      }
    }
  }
}

function describe(entries: readonly { kind: string; value?: string }[], at: number): string {
  if (at < 0) return 'nothing'
  const entry = entries[at]
  return entry === undefined
    ? `#${at}`
    : entry.kind === 'put'
      ? `'${entry.value}'`
      : `delete #${at}`
}
