import { FSWatcher } from './chokidar.js'
import type { Stats } from 'node:fs'
import { resolve, sep } from 'node:path'
import { timer, type Subscription } from 'rxjs'
import { UnavailableError, describe, type DatasyncError } from '../../core/errors.js'
import type { SnapshotCause } from '../../core/events.js'
import { NAME } from './errors.js'
import { identify, nearestExisting, type ReadOutcome } from './files.js'
import type { JobQueue } from './jobs.js'
import type { ResolvedOptions } from './options.js'
import { parentOf } from './paths.js'
import type { Scanner } from './scan.js'

/** What a {@link FileWatcher} needs from its store. */
export interface WatcherContext {
  readonly options: ResolvedOptions
  readonly scanner: Scanner
  /** The store's jobs: a batch reads and applies before the next job starts. */
  readonly jobs: JobQueue
  /**
   * Applies what a batch read: changes for the live watches, or a snapshot with `cause`; with
   * `flush`, the watches waiting for their first snapshot get it.
   */
  apply(
    updates: ReadonlyMap<string, ReadOutcome>,
    cause: SnapshotCause | undefined,
    flush: boolean,
  ): void
  report(error: DatasyncError): void
  /** An unexpected error of a job. */
  internal(error: unknown): void
  /** The watcher's {@link FileWatcher.problem} changed. */
  problemChanged(): void
  /** A chokidar watcher closing: the store's `close()` waits for it. */
  closing(done: Promise<unknown>): void
}

/** A set of paths to look at again, or a full rescan, waiting for its turn. */
interface Batch {
  readonly dirty: Set<string>
  cause: SnapshotCause | undefined
  /** When its oldest path was hinted (scheduler time). */
  since: number
}

/**
 * The live part of the store while at least one watch is subscribed: one chokidar watcher on
 * the nearest existing parent of every configured path, and the batching of its events. Paths
 * it hints at are read once the files have been quiet for `settle`, and at least every
 * `maxDelay`; a batch whose files changed while they were read is read again with the next one.
 * A file read empty or gone is held for `deleteHold` before its keys are deleted (an editor's
 * truncate-then-write or delete-then-create must not show every key deleted and put back).
 * A failed chokidar watcher is restarted after `retryDelay`, then everything is rescanned.
 */
export class FileWatcher {
  readonly #context: WatcherContext
  #fsw: FSWatcher | undefined
  /** The directories chokidar watches, with their identity when it started. */
  #roots: ReadonlyMap<string, string> = new Map()
  /** Chokidar is ready: events from now on are reported. */
  #watching = false
  #synced = false
  #stopped = false
  #pending = new Set<string>()
  /** When the oldest pending path was hinted (scheduler time). */
  #since: number | undefined
  /** Counts hints, so a batch can tell whether files changed while it read them. */
  #hints = 0
  #cause: SnapshotCause | undefined
  #quiet: Subscription | undefined
  #deadline: Subscription | undefined
  #restart: Subscription | undefined
  /** A batch queued and not started yet, which later changes join. */
  #batch: Batch | undefined
  #problem: DatasyncError | undefined
  /** Files read empty or gone, not applied yet: since when, and the timer that looks again. */
  readonly #held = new Map<string, { readonly since: number; readonly again: Subscription }>()

  /** Starts chokidar; the first batch is a full scan that gives the watches their snapshot. */
  constructor(context: WatcherContext) {
    this.#context = context
    this.#open('startup')
  }

  /** The first scan after chokidar was ready was applied: watches get their snapshot at once. */
  get synced(): boolean {
    return this.#synced
  }

  /** The failure of chokidar, until the watcher restarted and rescanned. */
  get problem(): DatasyncError | undefined {
    return this.#problem
  }

  /** Stops chokidar and the batching, for good. */
  stop(): void {
    if (this.#stopped) return
    this.#stopped = true
    this.#quiet?.unsubscribe()
    this.#deadline?.unsubscribe()
    this.#restart?.unsubscribe()
    this.#close()
    this.#releaseAll()
    if (this.#problem !== undefined) {
      this.#problem = undefined
      this.#context.problemChanged()
    }
  }

  #close(): void {
    const fsw = this.#fsw
    this.#fsw = undefined
    this.#watching = false
    this.#pending = new Set()
    this.#since = undefined
    this.#cause = undefined
    if (fsw === undefined) return
    this.#context.closing(fsw.close().catch(() => undefined))
  }

  /** Starts chokidar on the nearest existing parent of every configured path. */
  #open(cause: SnapshotCause): void {
    const { jobs, options, scanner } = this.#context
    jobs
      .enqueue(async () => {
        if (this.#stopped) return
        const dirs = new Map<string, string>()
        for (const root of options.paths) {
          const dir = await nearestExisting(parentOf(root))
          dirs.set(dir, await identify(dir))
        }
        if (this.#stopped) return
        const fsw = new FSWatcher({
          ignoreInitial: true,
          // Unlinks are not delayed: batches join an unlink with its add (rename, atomic save).
          atomic: false,
          // Unreadable files are still reported to us, and we report the error.
          ignorePermissionErrors: true,
          followSymlinks: true,
          // Only what leads to data is watched: configured paths, their ancestors, and under a
          // configured directory everything but dot names and files that are not data files.
          ignored: (path: string, stats?: Stats) =>
            scanner.inData(path)
              ? stats?.isFile() === true && !scanner.isDataFile(path)
              : !scanner.isAncestor(path),
        })
        this.#fsw = fsw
        this.#roots = dirs
        fsw.on('all', (_event, path) => {
          if (this.#fsw === fsw) this.#hint(resolve(path))
        })
        // Raw events come unthrottled (chokidar drops a change within 50 ms of another).
        fsw.on('raw', (_event, name, details) => {
          if (this.#fsw !== fsw) return
          const watched = (details as { watchedPath?: unknown } | undefined)?.watchedPath
          if (typeof watched !== 'string') return
          const dir = resolve(watched)
          if (typeof name !== 'string' || name === '') {
            this.#hint(dir)
            return
          }
          this.#hint(resolve(dir, name))
          // A file's own watcher names the file itself.
          if (dir.endsWith(sep + name)) this.#hint(dir)
        })
        fsw.on('error', (error: unknown) => {
          if (this.#fsw === fsw) this.#fail(error)
        })
        fsw.on('ready', () => {
          if (this.#fsw !== fsw || this.#stopped) return
          this.#watching = true
          this.#cause = cause
          this.#flush()
        })
        fsw.add([...dirs.keys()])
      })
      .subscribe({
        error: (error: unknown) => {
          this.#context.internal(error)
        },
      })
  }

  #fail(error: unknown): void {
    const retryMs = this.#context.options.retryMs
    this.#problem = new UnavailableError(
      NAME,
      `the file watcher failed (${describe(error)}); restarting it in ${retryMs} ms, then rescanning`,
      { cause: error },
    )
    this.#context.report(this.#problem)
    this.#context.problemChanged()
    this.#close()
    this.#quiet?.unsubscribe()
    this.#deadline?.unsubscribe()
    this.#quiet = this.#deadline = undefined
    this.#restart?.unsubscribe()
    this.#restart = timer(retryMs, this.#context.options.scheduler).subscribe(() => {
      this.#restart = undefined
      if (!this.#stopped) this.#open('watch-error')
    })
  }

  #reopen(): void {
    this.#close()
    this.#releaseAll()
    this.#open('rescan')
  }

  /**
   * Holds back the files of `updates` read empty or gone (see `deleteHold`): each is looked at
   * again when its hold is over, and applied then if it is still empty or gone. A file read with
   * content is released and applied as usual (only what differs).
   */
  #holdEmpties(updates: Map<string, ReadOutcome>): void {
    const { deleteHoldMs, scheduler } = this.#context.options
    if (deleteHoldMs <= 0) return
    const now = scheduler.now()
    for (const [file, outcome] of updates) {
      const empty = isEmpty(outcome)
      const held = this.#held.get(file)
      if (!empty || (held !== undefined && now - held.since >= deleteHoldMs)) {
        this.#release(file)
        continue
      }
      updates.delete(file)
      if (held === undefined) {
        const again = timer(deleteHoldMs, scheduler).subscribe(() => {
          this.#hint(file)
        })
        this.#held.set(file, { since: now, again })
      }
    }
  }

  #release(file: string): void {
    this.#held.get(file)?.again.unsubscribe()
    this.#held.delete(file)
  }

  #releaseAll(): void {
    for (const { again } of this.#held.values()) again.unsubscribe()
    this.#held.clear()
  }

  #hint(path: string): void {
    const { scanner, options } = this.#context
    if (this.#stopped || !this.#watching) return
    if (!scanner.inData(path) && !scanner.isAncestor(path)) return
    this.#hints++
    this.#pending.add(path)
    this.#since ??= options.scheduler.now()
    this.#quiet?.unsubscribe()
    this.#quiet = this.#afterQuiet()
    this.#deadline ??= this.#deadlineFrom(this.#since)
  }

  #afterQuiet(): Subscription {
    return timer(this.#context.options.settleMs, this.#context.options.scheduler).subscribe(() => {
      this.#flush()
    })
  }

  /** A batch waits at most maxDelay after its oldest hint, however busy the files are. */
  #deadlineFrom(since: number): Subscription {
    const { maxDelayMs, scheduler } = this.#context.options
    const left = Math.max(0, maxDelayMs - (scheduler.now() - since))
    return timer(left, scheduler).subscribe(() => {
      this.#flush()
    })
  }

  #flush(): void {
    this.#quiet?.unsubscribe()
    this.#deadline?.unsubscribe()
    this.#quiet = this.#deadline = undefined
    if (this.#stopped || (this.#pending.size === 0 && this.#cause === undefined)) return
    const dirty = this.#pending
    const cause = this.#cause
    const since = this.#since ?? this.#context.options.scheduler.now()
    this.#pending = new Set()
    this.#since = undefined
    this.#cause = undefined
    const queued = this.#batch
    if (queued !== undefined) {
      for (const path of dirty) queued.dirty.add(path)
      queued.cause ??= cause
      queued.since = Math.min(queued.since, since)
      return
    }
    const batch: Batch = { dirty, cause, since }
    this.#batch = batch
    this.#context.jobs
      .enqueue(() => {
        if (this.#batch === batch) this.#batch = undefined
        return this.#run(batch)
      })
      .subscribe({
        error: (error: unknown) => {
          this.#context.internal(error)
        },
      })
  }

  /** Puts a batch back: its paths are read again with the next batch. */
  #requeue(batch: Batch): void {
    const queued = this.#batch
    if (queued !== undefined) {
      for (const path of batch.dirty) queued.dirty.add(path)
      queued.since = Math.min(queued.since, batch.since)
      return
    }
    for (const path of batch.dirty) this.#pending.add(path)
    this.#since = Math.min(this.#since ?? batch.since, batch.since)
    this.#quiet?.unsubscribe()
    this.#quiet = this.#afterQuiet()
    this.#deadline?.unsubscribe()
    this.#deadline = this.#deadlineFrom(this.#since)
  }

  async #run(batch: Batch): Promise<void> {
    const { scanner, options } = this.#context
    if (this.#stopped) return
    const canFlush = this.#watching
    let cause = batch.cause
    if (cause === undefined && [...batch.dirty].some((path) => scanner.isStructural(path))) {
      for (const [dir, id] of this.#roots) {
        if ((await identify(dir)) !== id) {
          // A directory chokidar watches from was removed: start over from what exists now.
          this.#reopen()
          return
        }
      }
      const look = await scanner.lookAtRoots()
      if (look.replaced) {
        this.#reopen()
        return
      }
      if (look.rescan) cause = 'rescan'
    }
    const hintsBefore = this.#hints
    let updates: Map<string, ReadOutcome>
    if (cause !== undefined) {
      updates = await scanner.fullScan()
    } else {
      updates = new Map()
      for (const path of [...batch.dirty].sort()) await scanner.reconcile(path, updates)
    }
    if (this.#stopped) {
      // Nothing holds them any more: a file read empty or gone is left for the next scan (the
      // next watcher's holds it), since it may be an editor's save caught halfway.
      for (const [file, outcome] of updates) if (isEmpty(outcome)) updates.delete(file)
      this.#context.apply(updates, undefined, false)
      return
    }
    if (cause === undefined) {
      // Let file-system events that raced with the reads arrive (they are handled in the poll
      // phase; setImmediate runs after it). If files changed while they were read, what was read
      // may mix before and after (a file renamed between two reads is seen nowhere): read again
      // with the next batch, unless the batch already waited maxDelay.
      await new Promise<void>((resolve) => setImmediate(resolve))
      const waited = options.scheduler.now() - batch.since
      if (this.#hints !== hintsBefore && waited < options.maxDelayMs && !this.#stopped) {
        this.#requeue(batch)
        return
      }
    }
    // A rescan (another directory in place) applies what it finds; a watcher's first scan holds
    // too, as the store may know the files from a watcher before it (a watch restarted).
    if (cause === 'rescan') this.#releaseAll()
    else this.#holdEmpties(updates)
    for (const [file, outcome] of updates) {
      // Read again once the writer is done.
      if (outcome.kind === 'unsettled') this.#hint(file)
    }
    if (cause === 'watch-error' || cause === 'startup') this.#problem = undefined
    if (canFlush) this.#synced = true
    this.#context.apply(updates, cause, canFlush)
  }
}

/** A file read empty or gone: its keys would all be deleted. */
function isEmpty(outcome: ReadOutcome): boolean {
  return outcome.kind === 'gone' || (outcome.kind === 'ok' && outcome.parsed.entries.size === 0)
}
