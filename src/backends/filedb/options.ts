import { resolve } from 'node:path'
import { asyncScheduler, type Observable, type SchedulerLike } from 'rxjs'
import { toMillis, type Duration } from '../../core/duration.js'
import type { DatasyncError } from '../../core/errors.js'
import type { KvStore } from '../../core/store.js'
import { show } from '../../internal/checks.js'
import { formatOf, type FileFormat } from './format.js'

/** Options of `createFileStore`. */
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
  /**
   * How long a watched file that became empty or disappeared is held before its keys are
   * deleted. An editor that truncates a file and then writes it, or deletes it and creates it
   * again (some save that way), leaves it empty or missing for a moment; without the hold,
   * consumers would see every key of the file deleted and then put back. If the file has content
   * again within the hold, only what differs is applied. The trade-off is latency: a file really
   * emptied or removed has its keys deleted this much later (changes to files with content are
   * not held; they wait only for `settle`). `0` deletes at once. A rescan (after a watcher
   * failure or a replaced directory) applies what it finds without holding.
   *
   * @default '1s'
   */
  readonly deleteHold?: Duration
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

/** The options, checked, with paths resolved and durations in milliseconds. */
export interface ResolvedOptions {
  /** The configured paths: absolute, sorted, each once. */
  readonly paths: readonly string[]
  /** The status file, absolute. */
  readonly statusPath: string | undefined
  /** The status file's format, by its extension. */
  readonly statusFormat: FileFormat | undefined
  readonly settleMs: number
  readonly maxDelayMs: number
  readonly deleteHoldMs: number
  readonly retryMs: number
  readonly scheduler: SchedulerLike
}

/**
 * Checks the options of `createFileStore` and resolves them: paths absolute, sorted and
 * without repeats, the status file's format from its extension, durations in milliseconds.
 *
 * @throws TypeError saying what was expected and what came.
 */
export function resolveOptions(options: FileStoreOptions): ResolvedOptions {
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
    deleteHoldMs: toMillis(options.deleteHold ?? '1s', 'createFileStore: deleteHold'),
    retryMs: toMillis(options.retryDelay ?? '1s', 'createFileStore: retryDelay'),
    scheduler: options.scheduler ?? asyncScheduler,
  }
}
