import { concat, mergeMap, of, type Observable } from 'rxjs'
import type { SnapshotCause, SnapshotEvent, StoreEvent } from '../core/events.js'
import type { KvStore, WatchOptions } from '../core/store.js'
import type { EventReason } from './types.js'

/** Why a watch (re)starts: an event reason, or the anti-entropy relist. */
export type Restart = EventReason | 'anti-entropy'

/** The reason of a round that a snapshot in the middle of a watch starts. */
export function reasonOf(cause: SnapshotCause): EventReason {
  return cause === 'reconnect' ? 'reconnect' : 'gap'
}

/**
 * Whether every consumer gets a round's snapshot whole (a resync) rather than the differences
 * from its view: asked for (`manual`, or `whole`: a restored snapshot came from another store),
 * restored, or a gap under `resyncAfterReconnect`.
 */
export function isFullRound(
  restart: Restart,
  reason: EventReason,
  resyncAfterReconnect: boolean,
  whole: boolean,
): boolean {
  return (
    whole ||
    reason === 'manual' ||
    reason === 'restored' ||
    (restart !== 'anti-entropy' &&
      reason !== 'startup' &&
      reason !== 'register' &&
      resyncAfterReconnect)
  )
}

/**
 * The store watch after a `restored` snapshot: the snapshot at once, then the watch once `resume`
 * (absent: at once, the same store) says how: `true` after the snapshot's revision (the same
 * store), `false` afresh (another store: its revisions say nothing of this snapshot's).
 * `decided` hears the answer first.
 *
 * ```
 * resume:  ------t|
 * result:  R-----(watch after R's revision)…
 * ```
 */
export function restoredWatch<R>(
  store: KvStore<R>,
  prefixes: readonly string[],
  relist: WatchOptions,
  restored: SnapshotEvent<R>,
  resume: Observable<boolean> | undefined,
  decided: (same: boolean) => void,
): Observable<StoreEvent<R>> {
  return concat(
    of(restored),
    (resume ?? of(true)).pipe(
      mergeMap((same) => {
        decided(same)
        return store.watch(prefixes, same ? { ...relist, after: restored.revision } : relist)
      }),
    ),
  )
}
