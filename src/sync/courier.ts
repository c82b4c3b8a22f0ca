import type { SchedulerLike, Subject } from 'rxjs'
import type { DatasyncError } from '../core/errors.js'
import type { ConsumerState } from './consumer-state.js'
import type { AckSettings } from './operators/await-ack.js'
import type { AckPolicy, ConsumerEvent, SyncActivity } from './types.js'

/** How one orchestrator awaits acks: its resolved `DatasyncOptions`. */
export interface AckRules {
  readonly ackTimeoutMs: number
  readonly policy: AckPolicy
  readonly maxRetries: number
  readonly retryDelayMs: number
  readonly scheduler: SchedulerLike
}

type EventKind = 'resync' | 'change'

/**
 * How events reach consumers, for the resync round and the delta pump alike: `hand` gives a
 * consumer its event and records the delivery on `activity$`; `ackSettings` says how `awaitAck`
 * waits for the consumer's ack, reports its failures and records it.
 */
export class Courier {
  readonly #rules: AckRules
  readonly #report: (error: DatasyncError) => void
  readonly #activity: Subject<SyncActivity>
  /**
   * The settings per kind and consumer, made at the first delivery: they never change, and a
   * delivery is the hot path (one per change event under load), so it allocates none.
   */
  readonly #settings: Record<EventKind, Map<string, AckSettings>> = {
    resync: new Map(),
    change: new Map(),
  }

  /** Called when a consumer's ack settles, with its failure if it failed. */
  readonly #onSettled: (consumer: string, error?: DatasyncError) => void
  /** Called when a consumer has settled a delivery and holds one less unacknowledged event. */
  readonly #afterSettle: (state: ConsumerState<never, unknown>) => void

  constructor(
    rules: AckRules,
    report: (error: DatasyncError) => void,
    activity: Subject<SyncActivity>,
    onSettled: (consumer: string, error?: DatasyncError) => void = () => undefined,
    afterSettle: (state: ConsumerState<never, unknown>) => void = () => undefined,
  ) {
    this.#afterSettle = afterSettle
    this.#rules = rules
    this.#report = report
    this.#activity = activity
    this.#onSettled = onSettled
  }

  /** Gives a consumer its event, and records it. */
  hand<R, T>(state: ConsumerState<R, T>, event: ConsumerEvent<T>): void {
    if (this.#activity.observed) {
      this.#activity.next({
        type: 'delivered',
        consumer: state.name,
        kind: event.kind,
        reason: event.reason,
        keys: event.kind === 'resync' ? event.items.length : event.changes.length,
      })
    }
    state.emit(event)
  }

  /** A consumer settled a delivery (its book-keeping is done): writes waiting on it re-check. */
  afterSettle<R, T>(state: ConsumerState<R, T>): void {
    this.#afterSettle(state as unknown as ConsumerState<never, unknown>)
  }

  /** How the ack of a consumer's event of one kind is awaited (see `awaitAck`). */
  ackSettings(consumer: string, kind: EventKind): AckSettings {
    const known = this.#settings[kind].get(consumer)
    if (known) return known
    const rules = this.#rules
    const activity = this.#activity
    const onSettled = this.#onSettled
    const settings: AckSettings = {
      consumer,
      kind,
      timeoutMs: rules.ackTimeoutMs,
      policy: rules.policy,
      maxRetries: rules.maxRetries,
      retryDelayMs: rules.retryDelayMs,
      scheduler: rules.scheduler,
      report: this.#report,
      settled: (latencyMs, error) => {
        onSettled(consumer, error)
        if (!activity.observed) return
        activity.next(
          error
            ? { type: 'acknowledged', consumer, kind, latencyMs, error }
            : { type: 'acknowledged', consumer, kind, latencyMs },
        )
      },
    }
    this.#settings[kind].set(consumer, settings)
    return settings
  }
}
