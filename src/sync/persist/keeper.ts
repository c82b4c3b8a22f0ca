import {
  EMPTY,
  Subject,
  auditTime,
  catchError,
  defer,
  exhaustMap,
  from,
  ignoreElements,
  map,
  mergeMap,
  of,
  tap,
  type Observable,
  type SchedulerLike,
} from 'rxjs'
import type { DatasyncError } from '../../core/errors.js'
import type { ChangesEvent, KeyValue, SnapshotEvent } from '../../core/events.js'
import type { Revision } from '../../core/revision.js'
import type { PersistSettings } from '../settings.js'
import type { SyncActivity } from '../types.js'
import { SnapshotPersistError, decodeSnapshot, encodeSnapshot, prefixSet } from './format.js'
import { StoreIdentity, type Restoring } from './identity.js'

/** What a {@link SnapshotKeeper} needs from its orchestrator. */
export interface KeeperContext {
  readonly options: PersistSettings
  readonly storeName: string
  /** The store's `identity`, when it has one. */
  readonly identity: (() => Observable<string>) | undefined
  readonly scheduler: SchedulerLike
  readonly report: (error: DatasyncError) => void
  readonly activity: Subject<SyncActivity>
}

/**
 * The orchestrator's last known good snapshot (`persist`): a mirror of the store's content under
 * the watched prefixes at one revision, kept from the watch's snapshots and changes (one copy
 * for every consumer: each consumer's view is its part of it, and converges to it), and saved at
 * most once per `every` while it changes (each save writes every key: that bounds the cost). At
 * start, `load` reads it back for the consumers' `restored` resync, and the watch resumes after
 * its revision.
 *
 * ```
 * changes:  -c-c-c--------c------
 * saves:    -----s(every)-----s--   (audit: the first change opens a window, its end saves)
 * ```
 */
export class SnapshotKeeper<R> {
  readonly #context: KeeperContext
  /**
   * The mirror, or undefined while it is still the items of the last snapshot (`#items`): a
   * snapshot of 100k keys is not copied into a map before its round (the first view waits for
   * nothing), only when the first change comes.
   */
  #mirror: Map<string, KeyValue<R>> | undefined = new Map()
  #items: readonly KeyValue<R>[] = []
  /** The mirror's revision; undefined while it waits for a snapshot (so it is not complete). */
  #revision: Revision | undefined
  #prefixes: readonly string[] = []
  readonly #dirty = new Subject<void>()
  #saving = false
  /** The revision last saved (or loaded): a flush with nothing newer writes nothing. */
  #saved: Revision | undefined

  readonly #identity: StoreIdentity

  constructor(context: KeeperContext) {
    this.#context = context
    this.#identity = new StoreIdentity(
      context.identity,
      context.scheduler,
      context.options.identityWaitMs,
    )
  }

  /**
   * The saved snapshot for `prefixes` (see {@link Restoring}): nothing when there is none or it
   * cannot be used (each problem reported on `errors$`: nothing is applied), or when it was
   * saved from another store (see `StoreIdentity.check`).
   */
  load(prefixes: readonly string[]): Observable<Restoring<R>> {
    const { report } = this.#context
    const source = this.#context.options.to.name
    // Asked at once, while the file is read: a store that is up has answered by then.
    this.#identity.ask()
    return this.#read(prefixes).pipe(
      mergeMap((saved) =>
        saved === undefined ? of({}) : this.#identity.check(saved, source, report),
      ),
    )
  }

  #read(
    prefixes: readonly string[],
  ): Observable<(SnapshotEvent<R> & { identity?: string }) | undefined> {
    const { options, report } = this.#context
    const source = options.to.name
    return defer(() => from(options.to.load())).pipe(
      catchError((cause: unknown) => {
        report(new SnapshotPersistError(source, 'unreadable', describe(cause), { cause }))
        return of(undefined)
      }),
      mergeMap((text) =>
        text === undefined
          ? of(undefined)
          : from(decodeSnapshot<R>(source, text, prefixes, options.values)).pipe(
              catchError((error: unknown) => {
                report(
                  error instanceof SnapshotPersistError
                    ? error
                    : new SnapshotPersistError(source, 'corrupt', describe(error), {
                        cause: error,
                      }),
                )
                return of(undefined)
              }),
            ),
      ),
      map((saved) =>
        saved === undefined
          ? undefined
          : {
              type: 'snapshot' as const,
              revision: saved.revision,
              items: saved.items,
              cause: 'startup' as const,
              ...(saved.identity === undefined ? {} : { identity: saved.identity }),
            },
      ),
    )
  }

  /** A watch of `prefixes` starts: the mirror is not complete until its first snapshot. */
  begin(prefixes: readonly string[]): void {
    this.#prefixes = prefixSet(prefixes)
    this.#revision = undefined
  }

  /** A snapshot (`saved`: the one just loaded, which needs no saving) replaces the mirror. */
  adopt(snapshot: SnapshotEvent<R>, saved = false): void {
    this.#mirror = undefined
    this.#items = snapshot.items
    this.#revision = snapshot.revision
    if (saved) this.#saved = snapshot.revision
    else this.#dirty.next()
  }

  /** A store commit: applied to the mirror. */
  apply(event: ChangesEvent<R>): void {
    if (this.#revision === undefined) return
    const mirror = this.#map()
    for (const change of event.changes) {
      if (change.op === 'put') {
        mirror.set(change.key, {
          key: change.key,
          value: change.value,
          revision: change.revision,
        })
      } else {
        mirror.delete(change.key)
      }
    }
    this.#revision = event.revision
    this.#dirty.next()
  }

  /** The mirror as a map, made from the last snapshot's items at the first change after it. */
  #map(): Map<string, KeyValue<R>> {
    if (this.#mirror === undefined) {
      this.#mirror = new Map()
      for (const item of this.#items) this.#mirror.set(item.key, item)
      this.#items = []
    }
    return this.#mirror
  }

  /** Saves while subscribed: at most one save per `every`, one at a time. */
  saves(): Observable<never> {
    return this.#dirty.pipe(
      auditTime(this.#context.options.everyMs, this.#context.scheduler),
      exhaustMap(() => this.#save()),
      ignoreElements(),
    )
  }

  /**
   * The run ends: saves now what changed since the last save, unless a save runs, and stops
   * asking a store that never told its identity (such a save is then dropped).
   */
  flush(): void {
    if (!this.#saving && this.#revision !== this.#saved) this.#save().subscribe()
    this.#identity.stop()
  }

  #save(): Observable<void> {
    const { options, scheduler, report, activity, storeName } = this.#context
    const at = this.#revision
    if (at === undefined) return EMPTY
    this.#saving = true
    const started = scheduler.now()
    const items = this.#mirror === undefined ? this.#items : [...this.#mirror.values()]
    const prefixes = this.#prefixes
    // Saved with the identity of the store the data came from (asked once per orchestrator).
    return this.#identity.known().pipe(
      mergeMap((identity) =>
        encodeSnapshot(
          { store: storeName, identity, revision: at, prefixes, savedAt: started, items },
          options.values,
        ),
      ),
      mergeMap((data) => from(options.to.save(data)).pipe(map(() => data.length))),
      tap((bytes) => {
        this.#saved = at
        activity.next({
          type: 'persisted',
          revision: at,
          keys: items.length,
          bytes,
          ms: scheduler.now() - started,
        })
      }),
      map(() => undefined),
      catchError((cause: unknown) => {
        report(new SnapshotPersistError(options.to.name, 'write', describe(cause), { cause }))
        return EMPTY
      }),
      tap({
        finalize: () => {
          this.#saving = false
          // Changed while it was written: the next window saves the rest.
          if (this.#revision !== at && this.#revision !== undefined) this.#dirty.next()
        },
      }),
    )
  }
}

function describe(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause)
}
