import type { Cluster, Redis } from 'ioredis'
import type { SchedulerLike } from 'rxjs'
import { UnavailableError, type DatasyncError } from '../../core/errors.js'
import type { SnapshotCause } from '../../core/events.js'
import { isFatalToWatch, type ErrorMapper } from '../../internal/errors.js'
import type { StoreHealth } from '../../internal/store-health.js'
import { NAME } from './errors.js'
import type { Settings } from './options.js'
import type { RevisionClock } from './revisions.js'

/** What a watch needs from its store. */
export interface WatchContext {
  readonly settings: Settings
  readonly scheduler: SchedulerLike
  readonly clock: RevisionClock
  /** The store's health: each watch reports through a part of its own. */
  readonly health: StoreHealth
  /** The store's error table. */
  readonly mapError: ErrorMapper
  /** The broker's Cluster client (to read the slot map), or undefined for a node or Sentinel. */
  readonly cluster: Cluster | undefined
  /** Registers a connection, so that `close()` can end it and wait for it. */
  readonly track: (connection: Redis) => void
  /** Forgets a connection that ended. */
  readonly untrack: (connection: Redis) => void
}

/** What a watch keeps across its sessions. */
export interface WatchState {
  readonly prefixes: readonly string[]
  /** The cause of the next snapshot. */
  cause: SnapshotCause
  /** Whether a snapshot was emitted yet (the first one always says `startup`). */
  started: boolean
}

/**
 * How a watch session ended: the error the store's status shows, whether it ends the watch, and
 * the cause the next session's snapshot carries.
 */
export class SessionEnd {
  constructor(
    readonly error: DatasyncError,
    readonly cause: SnapshotCause,
    readonly fatal = false,
  ) {}

  /** The session may have lost notifications: the next one relists, its snapshot saying `cause`. */
  static gap(cause: SnapshotCause, message: string, raw?: unknown): SessionEnd {
    return new SessionEnd(
      new UnavailableError(NAME, message, raw === undefined ? {} : { cause: raw }),
      cause,
    )
  }

  /** Any other error, by the store's table and the kit's one rule for watches. */
  static of(raw: unknown, mapError: ErrorMapper): SessionEnd {
    if (raw instanceof SessionEnd) return raw
    const mapped = mapError(raw, 'watch')
    const cause = mapped.error.code === 'unavailable' ? 'reconnect' : 'watch-error'
    return new SessionEnd(mapped.error, cause, isFatalToWatch(mapped))
  }
}
