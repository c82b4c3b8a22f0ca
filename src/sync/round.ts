import { EMPTY, concat, defer, finalize, takeUntil, tap, type Observable } from 'rxjs'
import type { SnapshotEvent } from '../core/events.js'
import type { ConsumerState } from './consumer-state.js'
import type { Courier } from './courier.js'
import { awaitAck } from './operators/await-ack.js'
import type { ConsumerEvent, EventReason } from './types.js'

/** One round: a store snapshot, why it is delivered, and whether every consumer gets it whole. */
export interface Round<R> {
  readonly snapshot: SnapshotEvent<R>
  readonly reason: EventReason
  /**
   * Every consumer gets a full resync (`manual`, or a gap under `resyncAfterReconnect`); else
   * only a consumer owed one (see `ConsumerState.pendingResync`) does, and the others get the
   * differences from their views as one change event each, or nothing when nothing differs.
   */
  readonly full: boolean
}

/**
 * A resync round: one step per consumer, in registration order, each starting when the previous
 * one's event is acknowledged (or its failure handled by the ack policy). Cold: a step computes
 * its event when its turn comes, so a round cancelled by the next snapshot leaves the consumers
 * it did not reach untouched.
 *
 * ```
 * snapshot:   S
 * consumer A: R--done
 * consumer B: -------R-done
 * result:     ---------------|
 * ```
 */
export function resyncRound<R>(
  states: readonly ConsumerState<R, unknown>[],
  round: Round<R>,
  courier: Courier,
): Observable<never> {
  return concat(
    ...states.map((state) => step(state, round, courier)),
    // The views given are made maps once every consumer has its event, not before.
    defer(() => {
      for (const state of states) state.settleView()
      return EMPTY
    }),
  )
}

/**
 * One consumer's part of a round: its resync, or the changes to its view, awaiting the ack. A
 * consumer nobody listens to is skipped (and owed its resync); one that closes or loses its last
 * subscriber while the step waits for it ends the step at once, so the round goes on.
 */
function step<R>(
  state: ConsumerState<R, unknown>,
  round: Round<R>,
  courier: Courier,
): Observable<never> {
  return defer(() => {
    if (state.closed) return EMPTY
    if (!state.listening) {
      state.skipRound()
      return EMPTY
    }
    const { snapshot } = round
    const rescoped = state.takeRescoped()
    const owed = state.pendingResync
    if (owed !== undefined || round.full) {
      const reason = round.reason === 'restored' ? 'restored' : (owed ?? round.reason)
      // A resync handed out but cancelled before its ack (the next snapshot superseded this
      // round) is owed again: the next round resyncs this consumer and waits for that ack, so
      // no delta reaches anyone while the consumer still applies a resync (P3).
      let handed = false
      let acknowledged = false
      return awaitAck(
        (done) => {
          handed = true
          state.enterStep()
          const event: ConsumerEvent<unknown> = {
            kind: 'resync',
            consumer: state.name,
            reason,
            revision: snapshot.revision,
            items: state.takeResync(snapshot.items),
            done: (...args) => {
              ack(...args)
            },
          }
          const ack = state.ackOf(done, event)
          courier.hand(state, event)
        },
        courier.ackSettings(state.name, 'resync'),
      ).pipe(
        tap({ complete: () => (acknowledged = true) }),
        finalize(() => {
          if (handed && !acknowledged && !state.closed && state.listening) state.oweResync(reason)
        }),
      )
    }
    const changes = state.diffTo(snapshot.items, snapshot.revision)
    if (changes.length === 0) return EMPTY
    return awaitAck(
      (done) => {
        state.enterStep()
        const event: ConsumerEvent<unknown> = {
          kind: 'change',
          consumer: state.name,
          reason: rescoped ? 'register' : diffReason(round.reason),
          revision: snapshot.revision,
          changes,
          done: (...args) => {
            ack(...args)
          },
        }
        const ack = state.ackOf(done, event)
        courier.hand(state, event)
      },
      courier.ackSettings(state.name, 'change'),
    )
  }).pipe(
    takeUntil(state.away$),
    finalize(() => {
      if (state.leaveStep()) courier.afterSettle(state)
    }),
  )
}

/** The reason a round's differences are delivered with, for consumers that already hold a view. */
function diffReason(reason: EventReason): EventReason {
  // A fresh run over existing views is a reconnect; a late registration's restart is just news.
  return reason === 'startup' ? 'reconnect' : reason === 'register' ? 'live' : reason
}
