import { Subscription } from 'rxjs'
import type { ChangesEvent } from '../core/events.js'
import type { ConsumerState } from './consumer-state.js'
import type { Courier } from './courier.js'
import { awaitAck } from './operators/await-ack.js'
import type { ChangeEvent } from './types.js'

/**
 * The delta pump of one run: store changes are queued per consumer (coalescing per key, P5) and
 * delivered as change events while the gate is open and the consumer has room (`maxInFlight`).
 * The gate is closed while a round is delivered (P3): the orchestrator opens it when every
 * consumer has acknowledged the round.
 *
 * ```
 * changes:   -a-b-c--------
 * consumer:  -a------x-----   (a acked at 8; x: b and c, queued behind it, in one event)
 * ```
 */
export class DeltaPump<R> {
  /** The registered consumers now (the list is replaced when one closes). */
  readonly #states: () => readonly ConsumerState<R, unknown>[]
  readonly #courier: Courier
  /** Where an ack failure the policy does not survive (`halt`, retries used up) goes: it ends the run. */
  readonly #fail: (error: unknown) => void
  /** Whether changes may flow: only between a round's last ack and the next round (or the end). */
  #open = false

  constructor(
    states: () => readonly ConsumerState<R, unknown>[],
    courier: Courier,
    fail: (error: unknown) => void,
  ) {
    this.#states = states
    this.#courier = courier
    this.#fail = fail
  }

  /** Whether changes flow (the last round was acknowledged). */
  get isOpen(): boolean {
    return this.#open
  }

  /** Opens the gate; `pumpAll` then delivers what waited. */
  open(): void {
    this.#open = true
  }

  /** Closes the gate: a round starts, or the run ends. */
  close(): void {
    this.#open = false
  }

  /** Delivers what waits for each consumer, as far as the gate and its room allow. */
  pumpAll(): void {
    for (const state of this.#states()) this.#pump(state)
  }

  /** Delivers what waits for one consumer (a retry fell due), as far as the gate allows. */
  pumpOne(state: ConsumerState<R, unknown>): void {
    this.#pump(state)
    state.publishLag()
  }

  /** Queues a store commit for every consumer it concerns, and delivers what may go. */
  onChanges(event: ChangesEvent<R>): void {
    for (const state of this.#states()) {
      state.enqueue(event.changes, event.revision)
      this.#pump(state)
      state.publishLag()
    }
  }

  #pump(state: ConsumerState<R, unknown>): void {
    while (this.#open) {
      const changes = state.nextDelivery()
      const last = changes?.at(-1)
      if (changes === undefined || last === undefined) return
      // The delivery's subscription is registered before it runs: a consumer may ack at once.
      const delivery = new Subscription()
      state.track(delivery)
      delivery.add(
        awaitAck(
          (done) => {
            const event: ChangeEvent<unknown> = {
              kind: 'change',
              consumer: state.name,
              reason: state.retriesOnly ? 'retry' : 'live',
              revision: last.revision,
              changes,
              done: (...args) => {
                ack(...args)
              },
            }
            const ack = state.ackOf(done, event)
            this.#courier.hand(state, event)
          },
          this.#courier.ackSettings(state.name, 'change'),
        ).subscribe({
          error: (error: unknown) => {
            this.#fail(error)
          },
          complete: () => {
            state.settled(delivery)
            this.#courier.afterSettle(state)
            this.#pump(state)
            state.publishLag()
          },
        }),
      )
    }
  }
}
