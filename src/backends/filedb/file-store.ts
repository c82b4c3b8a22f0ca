import { FSWatcher } from 'chokidar'
import type { Stats } from 'node:fs'
import { isAbsolute, resolve, sep } from 'node:path'
import {
  BehaviorSubject,
  Observable,
  Subject,
  asyncScheduler,
  defer,
  from,
  map,
  timer,
  type SchedulerLike,
  type Subscriber,
  type Subscription,
} from 'rxjs'
import { toMillis, type Duration } from '../../core/duration.js'
import {
  CapabilityError,
  ClosedError,
  ConfigError,
  DatasyncError,
  UnavailableError,
  describe,
} from '../../core/errors.js'
import type { Change, KeyValue, SnapshotCause, StoreEvent } from '../../core/events.js'
import { revision, ZERO_REVISION, type Revision } from '../../core/revision.js'
import { matchesAny } from '../../core/snapshot.js'
import type {
  Capabilities,
  DeleteOptions,
  KvStore,
  PutOptions,
  StoreStatus,
  TxnOp,
  TxnResult,
} from '../../core/store.js'
import {
  NAME,
  identify,
  nearestExisting,
  readDataFile,
  readDataFiles,
  walk,
  writeFileAtomic,
  type ReadOutcome,
} from './files.js'
import { encodeStatus, formatOf, type DataEntry, type FileFormat } from './format.js'
import { argumentChecks, show, type ArgumentChecks } from '../../internal/checks.js'
import { CLOSED, CONNECTING, READY, statusStream } from '../../internal/status.js'

/** Options of {@link createFileStore}. */
export interface FileStoreOptions {
  /**
   * The files and directories that hold the data (`configuration-paths`). A directory is read
   * recursively: every `.json`, `.yaml` and `.yml` file under it, except names starting with `.`
   * (editor and VCS files). A path that does not exist yet is watched and read when it appears.
   * Relative paths are resolved against the working directory.
   */
  readonly paths: readonly string[]
  /**
   * The one file the store writes (`status-path`): {@link FileStore.publishStatus} replaces it
   * atomically, as JSON for `.json` or YAML for `.yaml`/`.yml`, creating its directory. Never
   * read as data, even under a configured directory. Relative to the working directory.
   *
   * @default no status file (publishStatus fails)
   */
  readonly statusPath?: string
  /**
   * How long the watched files must be quiet before changes are read: a burst of writes, an
   * editor's save or a rename becomes one batch, diffed as a whole. A file that changes while it
   * is read is read again; a file read half-written fails to parse and keeps its last good keys
   * until the writer is done.
   *
   * @default '50ms'
   */
  readonly settle?: Duration
  /**
   * The longest a change waits while other changes keep coming: under a steady stream of writes a
   * batch is read and applied at least this often, even if files changed while it was read (a
   * rename storm longer than this may then show keys deleted and put back; consumers converge).
   *
   * @default '1s'
   */
  readonly maxDelay?: Duration
  /** How long to wait before restarting a file watcher that failed. @default '1s' */
  readonly retryDelay?: Duration
  /**
   * Where settle and retry delays are scheduled (a `TestScheduler` or `VirtualTimeScheduler`
   * virtualizes them).
   *
   * @default asyncScheduler
   */
  readonly scheduler?: SchedulerLike
}

/**
 * A read-only {@link KvStore} over JSON and YAML files, with the two things only files have:
 * the problems found in them, and the status file.
 */
export interface FileStore extends KvStore {
  /**
   * Every problem as it is found (hot, not replayed): a file that cannot be read or parsed
   * (`UnavailableError` or `ConfigError` naming the file and line; its last good keys are kept),
   * a key defined in two files (a `ConfigError` warning: the file whose path sorts first wins), a
   * configured path that does not exist (yet), a file watcher failure. While a file cannot be
   * read or parsed, or the watcher is down, `status$` is `degraded` with that error too.
   */
  readonly errors$: Observable<DatasyncError>
  /**
   * Writes the application's state to the status file (`statusPath`), in the format its
   * extension says, atomically (a temporary file renamed over it). Calls are applied in order.
   * Cold: nothing is written until subscribed.
   *
   * ```
   * publishStatus(s): ----(u|)     written and renamed into place
   * ```
   *
   * @example
   * ```ts
   * import { createFileStore } from 'rx-datasync/filedb'
   * const store = createFileStore({ paths: ['conf.d'], statusPath: 'status.json' })
   * store.publishStatus({ state: 'ok', plugins: { routes: 'ok' } }).subscribe()
   * ```
   */
  publishStatus(state: unknown): Observable<void>
}

const CAPABILITIES: Capabilities = Object.freeze({
  write: false,
  txn: false,
  ttl: false,
  nativePrev: true,
  resumable: false,
  atomicPrefixDelete: false,
})

/** Files read at once during a full scan. */
const READ_CONCURRENCY = 16

const EMPTY_ENTRIES: ReadonlyMap<string, DataEntry> = new Map()

interface Watcher {
  readonly prefixes: readonly string[]
  readonly subscriber: Subscriber<StoreEvent<Uint8Array>>
  /** It has its first snapshot (until then it waits for the engine's first scan). */
  live: boolean
}

/** What the store serves for a key: the winning file's entry. */
interface Item {
  readonly kv: KeyValue<Uint8Array>
  readonly raw: string
  readonly file: string
}

/** A set of paths to look at again, or a full rescan, waiting for its turn. */
interface Batch {
  readonly dirty: Set<string>
  cause: SnapshotCause | undefined
  /** When its oldest path was hinted (scheduler time). */
  since: number
}

/**
 * The live part of the store while at least one watch is subscribed: one chokidar watcher and
 * the batching of its events.
 */
interface Engine {
  fsw: FSWatcher | undefined
  /** The directories chokidar watches, with their identity when it started. */
  roots: ReadonlyMap<string, string>
  /** Chokidar is ready: events from now on are reported. */
  watching: boolean
  /** The first scan after `watching` was applied: watches get their snapshot at once. */
  synced: boolean
  stopped: boolean
  pending: Set<string>
  /** When the oldest pending path was hinted (scheduler time). */
  since: number | undefined
  /** Counts hints, so a batch can tell whether files changed while it read them. */
  hints: number
  cause: SnapshotCause | undefined
  quiet: Subscription | undefined
  deadline: Subscription | undefined
  restart: Subscription | undefined
  /** A batch queued and not started yet, which later changes join. */
  batch: Batch | undefined
}

/**
 * Creates a read-only store over JSON and YAML files: `{ "data": [ { "key": ..., "value": ... } ] }`.
 * A value is any JSON or YAML value; the store serves it as the UTF-8 bytes of its JSON text, so
 * the `json()` codec decodes it. An entry may give `text` (a string) instead of `value`: its bytes
 * are then the string itself, for consumers with the `string()` codec or another format.
 * Values are compared by their JSON text, so reformatting a file changes nothing; numbers are
 * JavaScript numbers (integers beyond 2^53 lose precision, as with `JSON.parse`).
 *
 * A watch starts one file watcher (chokidar) shared by every watch of the store, and stops it when
 * the last one unsubscribes. Its first event is a snapshot read after the watcher is ready; then
 * changes are read in batches once the files have been quiet for `settle`, and the union of all
 * files is diffed: a file renamed or moved (within or between configured paths) yields no events
 * for keys that did not change, an editor's atomic save yields one change, and a batch yields one
 * `changes` event at one revision. Revisions are the store's own counter, one per batch that
 * changed something. Changes carry `prev` (the value the store served before).
 *
 * A file that cannot be read or parsed keeps its last good keys; the error (file and line) goes
 * to `errors$` and `status$` is `degraded` until the file is fixed. A key defined in several
 * files comes from the file whose path sorts first; the others raise a warning on `errors$`.
 * When a configured directory appears (created late, or removed and recreated) every watch gets
 * a fresh snapshot with cause `rescan`; after a watcher failure, one with cause `watch-error`.
 *
 * `get`, `list` and `listKeys` answer from the watched state while a watch runs, else read the
 * files. `put`, `delete` and `txn` fail with a `CapabilityError`: change the files instead.
 *
 * ```
 * files:    a.json{x:1}   a.json{x:2}      mv a.json b.json    a.json:bad YAML     fixed
 * watch():  --S(x=1)------c(x:1->2)-------(nothing)-----------(degraded)--------c(...)
 * ```
 *
 * @example
 * ```ts
 * import { createDatasync, json } from 'rx-datasync'
 * import { createFileStore } from 'rx-datasync/filedb'
 * const store = createFileStore({ paths: ['conf.d'] })
 * const sync = createDatasync(store)
 * const routes = sync.register('routes', { prefixes: ['config/routes/'], codec: json<{ via: string }>() })
 * routes.events$.subscribe((event) => { console.log(event.kind); event.done() })
 * sync.start()
 * ```
 */
export function createFileStore(options: FileStoreOptions): FileStore {
  const settings = validate(options)
  const { paths: roots, statusPath, statusFormat } = settings
  const scheduler = options.scheduler ?? asyncScheduler

  // The state the store serves, kept between watches: each file's last good keys, for each key
  // the files that define it (sorted: the first wins), and the winning entries.
  const files = new Map<string, ReadonlyMap<string, DataEntry>>()
  const owners = new Map<string, string[]>()
  const served = new Map<string, Item>()
  const fileProblems = new Map<string, DatasyncError>()
  const dirProblems = new Map<string, DatasyncError>()
  let watcherProblem: DatasyncError | undefined
  const fileWarnings = new Map<string, string>()
  const duplicates = new Map<string, string>()
  const missingReported = new Set<string>()
  const rootIds = new Map<string, string>()
  const watchers = new Set<Watcher>()
  const status = new BehaviorSubject<StoreStatus>(CONNECTING)
  const errors = new Subject<DatasyncError>()
  let current: Revision = ZERO_REVISION
  let engine: Engine | undefined
  let closed = false
  /** A scan was applied: the status says ready or degraded from now on. */
  let scanned = false
  let jobs: Promise<unknown> = Promise.resolve()
  let statusWrites: Promise<unknown> = Promise.resolve()
  const closing = new Set<Promise<unknown>>()

  /** Runs jobs one at a time: each reads the files and applies what it read before the next. */
  function enqueue<T>(job: () => Promise<T>): Promise<T> {
    const run = jobs.then(job)
    jobs = run.catch(() => undefined)
    return run
  }

  function report(error: DatasyncError): void {
    if (!closed) errors.next(error)
  }

  function internal(error: unknown): void {
    report(
      error instanceof DatasyncError
        ? error
        : new DatasyncError('internal', `${NAME}: ${describe(error)}`, { cause: error }),
    )
  }

  // ---- paths ----------------------------------------------------------------------------------

  /** The path is a configured path or lies under a configured directory (no dot names below). */
  function inData(path: string): boolean {
    if (path === statusPath) return false
    return roots.some(
      (root) =>
        path === root ||
        (isUnder(path, root) &&
          !path
            .slice(root.length + 1)
            .split(sep)
            .some(isHidden)),
    )
  }

  /** The path is a directory on the way to a configured path. */
  function isAncestor(path: string): boolean {
    return roots.some((root) => isUnder(root, path))
  }

  function isDataFile(path: string): boolean {
    return roots.includes(path) || formatOf(path) !== undefined
  }

  function acceptFile(path: string): boolean {
    return path !== statusPath && formatOf(path) !== undefined
  }

  // ---- reading --------------------------------------------------------------------------------

  function reportMissing(root: string): void {
    if (missingReported.has(root)) return
    missingReported.add(root)
    report(
      new ConfigError(
        root,
        undefined,
        'the configured path does not exist (yet); it is watched and read when it appears',
      ),
    )
  }

  /** Reads every configured path; known files not found any more are `gone`. */
  async function fullScan(): Promise<Map<string, ReadOutcome>> {
    const found: string[] = []
    const failed = new Map<string, DatasyncError>()
    for (const root of roots) {
      const id = await identify(root)
      rootIds.set(root, id)
      if (id === 'missing') {
        reportMissing(root)
        continue
      }
      missingReported.delete(root)
      if (id.startsWith('dir:')) {
        const listing = await walk(root, acceptFile)
        found.push(...listing.files)
        for (const [dir, error] of listing.failed) failed.set(dir, error)
      } else if (root !== statusPath) {
        found.push(root)
      }
    }
    const updates = new Map<string, ReadOutcome>()
    await readDataFiles([...new Set(found)], READ_CONCURRENCY, updates)
    for (const file of files.keys()) {
      if (!updates.has(file) && !underAny(file, failed)) updates.set(file, { kind: 'gone' })
    }
    for (const file of fileProblems.keys()) {
      if (!updates.has(file) && !underAny(file, failed)) updates.set(file, { kind: 'gone' })
    }
    for (const dir of [...dirProblems.keys()]) if (!failed.has(dir)) dirProblems.delete(dir)
    for (const [dir, error] of failed) setDirProblem(dir, error)
    return updates
  }

  /** Looks at one path again: a file, a directory (walked) or something gone. */
  async function reconcile(path: string, updates: Map<string, ReadOutcome>): Promise<void> {
    if (!inData(path)) return
    const id = await identify(path)
    if (id === 'missing') {
      for (const file of [...files.keys(), ...fileProblems.keys()]) {
        if (file === path || isUnder(file, path)) updates.set(file, { kind: 'gone' })
      }
      for (const dir of [...dirProblems.keys()]) {
        if (dir === path || isUnder(dir, path)) dirProblems.delete(dir)
      }
    } else if (id.startsWith('dir:')) {
      const listing = await walk(path, acceptFile)
      const unread = listing.files.filter((file) => !updates.has(file))
      await readDataFiles(unread, READ_CONCURRENCY, updates)
      const listed = new Set(listing.files)
      for (const file of [...files.keys(), ...fileProblems.keys()]) {
        if (isUnder(file, path) && !listed.has(file) && !underAny(file, listing.failed)) {
          updates.set(file, { kind: 'gone' })
        }
      }
      for (const dir of [...dirProblems.keys()]) {
        if (dir === path || isUnder(dir, path)) dirProblems.delete(dir)
      }
      for (const [dir, error] of listing.failed) setDirProblem(dir, error)
    } else if (id === 'file' && isDataFile(path)) {
      updates.set(path, await readDataFile(path))
    }
  }

  function setDirProblem(dir: string, error: DatasyncError): void {
    if (dirProblems.get(dir)?.message !== error.message) report(error)
    dirProblems.set(dir, error)
  }

  // ---- applying -------------------------------------------------------------------------------

  function addOwner(key: string, file: string): void {
    const list = owners.get(key)
    if (list === undefined) {
      owners.set(key, [file])
      return
    }
    if (list.includes(file)) return
    list.push(file)
    list.sort()
  }

  function removeOwner(key: string, file: string): void {
    const list = owners.get(key)
    if (list === undefined) return
    const index = list.indexOf(file)
    if (index >= 0) list.splice(index, 1)
    if (list.length === 0) owners.delete(key)
  }

  function checkDuplicate(key: string, list: readonly string[] | undefined): void {
    if (list === undefined || list.length < 2) {
      duplicates.delete(key)
      return
    }
    const signature = list.join('\n')
    if (duplicates.get(key) === signature) return
    duplicates.set(key, signature)
    const [winner, ...others] = list
    report(
      new ConfigError(
        others.join(', '),
        undefined,
        `key '${key}' is also defined in ${winner}, whose path sorts first: that definition is used; define each key in one file`,
      ),
    )
  }

  /**
   * Applies what a job read, as one revision, and tells the watches: pending ones get their
   * first snapshot (when `flush`), live ones the changes, or a snapshot with `cause`.
   */
  function apply(
    updates: ReadonlyMap<string, ReadOutcome>,
    cause: SnapshotCause | undefined,
    flush: Engine | undefined,
  ): void {
    const touched = new Set<string>()
    for (const [file, outcome] of updates) {
      switch (outcome.kind) {
        case 'gone': {
          for (const key of files.get(file)?.keys() ?? []) {
            removeOwner(key, file)
            touched.add(key)
          }
          files.delete(file)
          fileProblems.delete(file)
          fileWarnings.delete(file)
          break
        }
        case 'ok': {
          const before = files.get(file) ?? EMPTY_ENTRIES
          const after = outcome.parsed.entries
          for (const [key, entry] of before) {
            const next = after.get(key)
            if (next === undefined) {
              removeOwner(key, file)
              touched.add(key)
            } else if (next.raw !== entry.raw) {
              touched.add(key)
            }
          }
          for (const key of after.keys()) {
            if (!before.has(key)) {
              addOwner(key, file)
              touched.add(key)
            }
          }
          files.set(file, after)
          fileProblems.delete(file)
          const warnings = outcome.parsed.warnings
          const signature = warnings.map((warning) => warning.message).join('\n')
          if (signature !== (fileWarnings.get(file) ?? '')) warnings.forEach(report)
          if (signature === '') fileWarnings.delete(file)
          else fileWarnings.set(file, signature)
          break
        }
        case 'error': {
          if (fileProblems.get(file)?.message !== outcome.error.message) report(outcome.error)
          fileProblems.set(file, outcome.error)
          break
        }
        case 'unsettled':
          break
      }
    }
    const next = revision(current + 1n)
    const changes: Change<Uint8Array>[] = []
    for (const key of [...touched].sort(compareKeys)) {
      const list = owners.get(key)
      checkDuplicate(key, list)
      const winner = list?.[0]
      const entry = winner === undefined ? undefined : files.get(winner)?.get(key)
      const old = served.get(key)
      if (winner === undefined || entry === undefined) {
        if (old !== undefined) {
          served.delete(key)
          changes.push({ op: 'delete', key, prev: old.kv.value, revision: next })
        }
      } else if (old === undefined || old.raw !== entry.raw) {
        const kv = Object.freeze({ key, value: entry.value, revision: next })
        served.set(key, { kv, raw: entry.raw, file: winner })
        changes.push(
          old === undefined
            ? { op: 'put', key, value: entry.value, revision: next }
            : { op: 'put', key, value: entry.value, prev: old.kv.value, revision: next },
        )
      } else if (old.file !== winner) {
        served.set(key, { ...old, file: winner })
      }
    }
    if (changes.length > 0) current = next
    if (flush !== undefined) flush.synced = true
    scanned = true
    updateStatus()
    deliver(changes, cause, flush !== undefined)
  }

  function deliver(
    changes: readonly Change<Uint8Array>[],
    cause: SnapshotCause | undefined,
    flush: boolean,
  ): void {
    for (const watcher of [...watchers]) {
      if (!watchers.has(watcher)) continue
      if (!watcher.live) {
        if (flush) {
          watcher.live = true
          watcher.subscriber.next(snapshotFor(watcher.prefixes, 'startup'))
        }
      } else if (cause !== undefined && cause !== 'startup') {
        watcher.subscriber.next(snapshotFor(watcher.prefixes, cause))
      } else if (changes.length > 0) {
        const mine = changes.filter((change) => matchesAny(change.key, watcher.prefixes))
        if (mine.length > 0) {
          watcher.subscriber.next({ type: 'changes', revision: current, changes: mine })
        }
      }
    }
  }

  function snapshotFor(prefixes: readonly string[], cause: SnapshotCause): StoreEvent<Uint8Array> {
    return { type: 'snapshot', revision: current, items: itemsUnder(prefixes), cause }
  }

  function itemsUnder(prefixes: readonly string[]): KeyValue<Uint8Array>[] {
    const items: KeyValue<Uint8Array>[] = []
    for (const [key, item] of served) if (matchesAny(key, prefixes)) items.push(item.kv)
    return items.sort((a, b) => compareKeys(a.key, b.key))
  }

  function updateStatus(): void {
    if (closed || !scanned) return
    const problem = watcherProblem ?? firstByPath(dirProblems) ?? firstByPath(fileProblems)
    const next: StoreStatus = problem === undefined ? READY : { state: 'degraded', error: problem }
    const now = status.value
    if (now.state !== next.state || now.error !== next.error) status.next(next)
  }

  // ---- the engine: chokidar and batching ------------------------------------------------------

  function startEngine(): Engine {
    const started: Engine = {
      fsw: undefined,
      roots: new Map(),
      watching: false,
      synced: false,
      stopped: false,
      pending: new Set(),
      since: undefined,
      hints: 0,
      cause: undefined,
      quiet: undefined,
      deadline: undefined,
      restart: undefined,
      batch: undefined,
    }
    engine = started
    openWatcher(started, 'startup')
    return started
  }

  function stopEngine(stopping: Engine): void {
    if (stopping.stopped) return
    stopping.stopped = true
    if (engine === stopping) engine = undefined
    stopping.quiet?.unsubscribe()
    stopping.deadline?.unsubscribe()
    stopping.restart?.unsubscribe()
    closeWatcher(stopping)
    if (watcherProblem !== undefined) {
      watcherProblem = undefined
      updateStatus()
    }
  }

  function closeWatcher(of: Engine): void {
    const fsw = of.fsw
    of.fsw = undefined
    of.watching = false
    of.pending = new Set()
    of.since = undefined
    of.cause = undefined
    if (fsw === undefined) return
    const closed = fsw.close().catch(() => undefined)
    closing.add(closed)
    void closed.then(() => closing.delete(closed))
  }

  /** Starts chokidar on the nearest existing parent of every configured path. */
  function openWatcher(of: Engine, cause: SnapshotCause): void {
    enqueue(async () => {
      if (of.stopped) return
      const dirs = new Map<string, string>()
      for (const root of roots) {
        const dir = await nearestExisting(parentOf(root))
        dirs.set(dir, await identify(dir))
      }
      if (of.stopped) return
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
          inData(path) ? stats?.isFile() === true && !isDataFile(path) : !isAncestor(path),
      })
      of.fsw = fsw
      of.roots = dirs
      fsw.on('all', (_event, path) => {
        if (of.fsw === fsw) hint(of, resolve(path))
      })
      // Raw events come unthrottled (chokidar drops a change within 50 ms of another).
      fsw.on('raw', (_event, name, details) => {
        if (of.fsw !== fsw) return
        const watched = (details as { watchedPath?: unknown } | undefined)?.watchedPath
        if (typeof watched !== 'string') return
        const dir = resolve(watched)
        if (typeof name !== 'string' || name === '') {
          hint(of, dir)
          return
        }
        hint(of, resolve(dir, name))
        // A file's own watcher names the file itself.
        if (dir.endsWith(sep + name)) hint(of, dir)
      })
      fsw.on('error', (error: unknown) => {
        if (of.fsw === fsw) failWatcher(of, error)
      })
      fsw.on('ready', () => {
        if (of.fsw !== fsw || of.stopped) return
        of.watching = true
        of.cause = cause
        flushBatch(of)
      })
      fsw.add([...dirs.keys()])
    }).catch(internal)
  }

  function failWatcher(of: Engine, error: unknown): void {
    const retryMs = settings.retryMs
    watcherProblem = new UnavailableError(
      NAME,
      `the file watcher failed (${describe(error)}); restarting it in ${retryMs} ms, then rescanning`,
      { cause: error },
    )
    report(watcherProblem)
    updateStatus()
    closeWatcher(of)
    of.quiet?.unsubscribe()
    of.deadline?.unsubscribe()
    of.quiet = of.deadline = undefined
    of.restart?.unsubscribe()
    of.restart = timer(retryMs, scheduler).subscribe(() => {
      of.restart = undefined
      if (!of.stopped) openWatcher(of, 'watch-error')
    })
  }

  function restartWatcher(of: Engine): void {
    closeWatcher(of)
    openWatcher(of, 'rescan')
  }

  function hint(of: Engine, path: string): void {
    if (of.stopped || !of.watching) return
    if (!inData(path) && !isAncestor(path)) return
    of.hints++
    of.pending.add(path)
    of.since ??= scheduler.now()
    of.quiet?.unsubscribe()
    of.quiet = timer(settings.settleMs, scheduler).subscribe(() => {
      flushBatch(of)
    })
    of.deadline ??= deadline(of, of.since)
  }

  /** A batch waits at most maxDelay after its oldest hint, however busy the files are. */
  function deadline(of: Engine, since: number): Subscription {
    const left = Math.max(0, settings.maxDelayMs - (scheduler.now() - since))
    return timer(left, scheduler).subscribe(() => {
      flushBatch(of)
    })
  }

  function flushBatch(of: Engine): void {
    of.quiet?.unsubscribe()
    of.deadline?.unsubscribe()
    of.quiet = of.deadline = undefined
    if (of.stopped || (of.pending.size === 0 && of.cause === undefined)) return
    const dirty = of.pending
    const cause = of.cause
    const since = of.since ?? scheduler.now()
    of.pending = new Set()
    of.since = undefined
    of.cause = undefined
    const queued = of.batch
    if (queued !== undefined) {
      for (const path of dirty) queued.dirty.add(path)
      queued.cause ??= cause
      queued.since = Math.min(queued.since, since)
      return
    }
    const batch: Batch = { dirty, cause, since }
    of.batch = batch
    enqueue(() => {
      if (of.batch === batch) of.batch = undefined
      return runBatch(of, batch)
    }).catch(internal)
  }

  /** Puts a batch back: its paths are read again with the next batch. */
  function requeue(of: Engine, batch: Batch): void {
    const queued = of.batch
    if (queued !== undefined) {
      for (const path of batch.dirty) queued.dirty.add(path)
      queued.since = Math.min(queued.since, batch.since)
      return
    }
    for (const path of batch.dirty) of.pending.add(path)
    of.since = Math.min(of.since ?? batch.since, batch.since)
    of.quiet?.unsubscribe()
    of.quiet = timer(settings.settleMs, scheduler).subscribe(() => {
      flushBatch(of)
    })
    of.deadline?.unsubscribe()
    of.deadline = deadline(of, of.since)
  }

  async function runBatch(of: Engine, batch: Batch): Promise<void> {
    if (of.stopped || engine !== of) return
    const canFlush = of.watching
    let cause = batch.cause
    if (cause === undefined && [...batch.dirty].some(isStructural)) {
      for (const [dir, id] of of.roots) {
        if ((await identify(dir)) !== id) {
          // A directory chokidar watches from was removed: start over from what exists now.
          restartWatcher(of)
          return
        }
      }
      let replaced = false
      for (const root of roots) {
        const before = rootIds.get(root)
        const now = await identify(root)
        rootIds.set(root, now)
        if (now.startsWith('dir:') && now !== before) {
          cause = 'rescan'
          // Another directory in its place (a symbolic link switched, a directory swapped in by
          // a rename): chokidar may still watch the old one.
          replaced ||= before?.startsWith('dir:') === true
        }
      }
      if (replaced) {
        restartWatcher(of)
        return
      }
    }
    const hintsBefore = of.hints
    let updates: Map<string, ReadOutcome>
    if (cause !== undefined) {
      updates = await fullScan()
    } else {
      updates = new Map()
      for (const path of [...batch.dirty].sort()) await reconcile(path, updates)
    }
    if (of.stopped || engine !== of) {
      apply(updates, undefined, undefined)
      return
    }
    if (cause === undefined) {
      // Let file-system events that raced with the reads arrive (they are handled in the poll
      // phase; setImmediate runs after it). If files changed while they were read, what was read
      // may mix before and after (a file renamed between two reads is seen nowhere): read again
      // with the next batch, unless the batch already waited maxDelay.
      await new Promise<void>((resolve) => setImmediate(resolve))
      const waited = scheduler.now() - batch.since
      if (of.hints !== hintsBefore && waited < settings.maxDelayMs && !of.stopped) {
        requeue(of, batch)
        return
      }
    }
    for (const [file, outcome] of updates) {
      // Read again once the writer is done.
      if (outcome.kind === 'unsettled') hint(of, file)
    }
    if (cause === 'watch-error' || cause === 'startup') {
      if (watcherProblem !== undefined) watcherProblem = undefined
    }
    apply(updates, cause, canFlush ? of : undefined)
  }

  /** A change of a configured directory, or of a directory on the way to a configured path. */
  function isStructural(path: string): boolean {
    return isAncestor(path) || (roots.includes(path) && rootIds.get(path) !== 'file')
  }

  /** Brings the state up to date for a read: from the watch if one runs, else from the files. */
  function fresh(): Promise<void> {
    if (engine?.synced === true) return Promise.resolve()
    return enqueue(async () => {
      if (engine?.synced === true) return
      const updates = await fullScan()
      apply(updates, undefined, undefined)
    })
  }

  // ---- the public surface ---------------------------------------------------------------------

  const status$ = statusStream(status, () => closed)

  function assertOpen(): void {
    if (closed) throw new ClosedError(`the ${NAME} store`)
  }

  function read<T>(what: () => T): Observable<T> {
    return defer(() => {
      assertOpen()
      return from(fresh()).pipe(
        map(() => {
          assertOpen()
          return what()
        }),
      )
    })
  }

  function refuse<T>(capability: string, detail: string): Observable<T> {
    return new Observable<T>((subscriber) => {
      subscriber.error(
        closed
          ? new ClosedError(`the ${NAME} store`)
          : new CapabilityError(
              NAME,
              capability,
              `${detail}: its data comes from the files under configuration-paths; change the files instead`,
            ),
      )
    })
  }

  return {
    name: NAME,
    capabilities: CAPABILITIES,
    status$,
    errors$: errors.asObservable(),

    watch(prefixes: readonly string[]): Observable<StoreEvent<Uint8Array>> {
      return new Observable<StoreEvent<Uint8Array>>((subscriber) => {
        try {
          assertOpen()
          assertPrefixes(prefixes)
        } catch (error) {
          subscriber.error(error)
          return undefined
        }
        const watcher: Watcher = { prefixes: [...prefixes], subscriber, live: false }
        watchers.add(watcher)
        const running = engine ?? startEngine()
        if (running.synced) {
          watcher.live = true
          subscriber.next(snapshotFor(watcher.prefixes, 'startup'))
        }
        return () => {
          watchers.delete(watcher)
          if (watchers.size === 0 && engine !== undefined) stopEngine(engine)
        }
      })
    },

    get(key: string): Observable<KeyValue<Uint8Array> | undefined> {
      return defer(() => {
        assertKey('get', key)
        return read(() => served.get(key)?.kv)
      })
    },

    list(prefix: string): Observable<readonly KeyValue<Uint8Array>[]> {
      return defer(() => {
        assertPrefix('list', prefix)
        return read(() => itemsUnder([prefix]))
      })
    },

    listKeys(prefix: string): Observable<readonly string[]> {
      return defer(() => {
        assertPrefix('listKeys', prefix)
        return read(() => itemsUnder([prefix]).map((item) => item.key))
      })
    },

    put(key: string, _value: Uint8Array, _options?: PutOptions): Observable<void> {
      return refuse('write', `put(${JSON.stringify(key)})`)
    },

    delete(key: string, _options?: DeleteOptions): Observable<{ readonly deleted: number }> {
      return refuse('write', `delete(${JSON.stringify(key)})`)
    },

    txn(_ops: readonly TxnOp<Uint8Array>[]): Observable<TxnResult> {
      return refuse('txn', 'a transaction')
    },

    publishStatus(state: unknown): Observable<void> {
      return defer(() => {
        assertOpen()
        if (statusPath === undefined || statusFormat === undefined) {
          throw new ConfigError(
            `${NAME} options`,
            'statusPath',
            'no status file is configured; set status-path to publish the status',
          )
        }
        const text = encodeStatus(statusFormat, state)
        const write = statusWrites.then(() => writeFileAtomic(statusPath, text))
        statusWrites = write.catch(() => undefined)
        return from(write)
      })
    },

    async close(): Promise<void> {
      if (!closed) {
        closed = true
        if (engine !== undefined) stopEngine(engine)
        const active = [...watchers]
        watchers.clear()
        for (const watcher of active) watcher.subscriber.complete()
        status.next(CLOSED)
        status.complete()
        errors.complete()
      }
      await Promise.all([...closing])
      await jobs
      await statusWrites
    },
  }
}

interface Settings {
  readonly paths: readonly string[]
  readonly statusPath: string | undefined
  readonly statusFormat: FileFormat | undefined
  readonly settleMs: number
  readonly maxDelayMs: number
  readonly retryMs: number
}

function validate(options: FileStoreOptions): Settings {
  if (typeof options !== 'object' || (options as unknown) === null) {
    throw new TypeError(`createFileStore: expected options { paths: [...] }, got ${show(options)}`)
  }
  const paths = options.paths as unknown
  if (!Array.isArray(paths) || paths.length === 0) {
    throw new TypeError(
      `createFileStore: paths: expected a non-empty list of files and directories, got ${show(paths)}`,
    )
  }
  for (const path of paths as unknown[]) {
    if (typeof path !== 'string' || path === '') {
      throw new TypeError(`createFileStore: paths: expected non-empty strings, got ${show(path)}`)
    }
  }
  let statusPath: string | undefined
  let statusFormat: FileFormat | undefined
  if (options.statusPath !== undefined) {
    if (typeof options.statusPath !== 'string' || options.statusPath === '') {
      throw new TypeError(
        `createFileStore: statusPath: expected a file path, got ${show(options.statusPath)}`,
      )
    }
    statusPath = resolve(options.statusPath)
    statusFormat = formatOf(statusPath)
    if (statusFormat === undefined) {
      throw new TypeError(
        `createFileStore: statusPath: expected a .json, .yaml or .yml file, got ${JSON.stringify(options.statusPath)}`,
      )
    }
  }
  return {
    paths: [...new Set((paths as string[]).map((path) => resolve(path)))].sort(),
    statusPath,
    statusFormat,
    settleMs: toMillis(options.settle ?? '50ms', 'createFileStore: settle'),
    maxDelayMs: toMillis(options.maxDelay ?? '1s', 'createFileStore: maxDelay'),
    retryMs: toMillis(options.retryDelay ?? '1s', 'createFileStore: retryDelay'),
  }
}

function isUnder(path: string, dir: string): boolean {
  if (!isAbsolute(dir)) return false
  return dir.endsWith(sep)
    ? path.length > dir.length && path.startsWith(dir)
    : path.startsWith(dir + sep)
}

function parentOf(path: string): string {
  return resolve(path, '..')
}

function isHidden(name: string): boolean {
  return name.startsWith('.')
}

function underAny(file: string, dirs: ReadonlyMap<string, unknown>): boolean {
  for (const dir of dirs.keys()) if (isUnder(file, dir)) return true
  return false
}

function firstByPath(problems: ReadonlyMap<string, DatasyncError>): DatasyncError | undefined {
  let first: string | undefined
  for (const path of problems.keys()) if (first === undefined || path < first) first = path
  return first === undefined ? undefined : problems.get(first)
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

const check: ArgumentChecks = argumentChecks({ backend: NAME })
const assertKey: ArgumentChecks['key'] = check.key
const assertPrefix: ArgumentChecks['prefix'] = check.prefix
const assertPrefixes: ArgumentChecks['prefixes'] = check.prefixes
