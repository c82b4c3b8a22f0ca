import { sep } from 'node:path'
import { ConfigError, type DatasyncError } from '../../core/errors.js'
import type { Catalog } from './catalog.js'
import { identify, readDataFile, readDataFiles, walk, type ReadOutcome } from './files.js'
import { formatOf } from './format.js'
import { isAtOrUnder, isHidden, isUnder, underAny } from './paths.js'

/** Files read at once during a full scan. */
const READ_CONCURRENCY = 16

/** What a look at the configured paths after a structural change found. */
export interface RootsLook {
  /** A configured path is a directory that was not there before: rescan everything. */
  readonly rescan: boolean
  /** A configured directory was replaced by another one: the file watcher must start over. */
  readonly replaced: boolean
}

/**
 * Reads the configured paths into outcomes for the {@link Catalog}: everything (a full scan), or
 * the paths a file watcher hinted at. It knows which paths hold data: the configured files, and
 * under the configured directories every `.json`, `.yaml` and `.yml` file without a dot name on
 * the way, except the status file.
 */
export class Scanner {
  readonly #roots: readonly string[]
  readonly #statusPath: string | undefined
  readonly #catalog: Catalog
  readonly #report: (error: DatasyncError) => void
  /** Each configured path's identity at the last look (see `identify`). */
  readonly #rootIds = new Map<string, string>()
  /** Configured paths reported missing (each is reported once until it appears). */
  readonly #missingReported = new Set<string>()

  constructor(
    roots: readonly string[],
    statusPath: string | undefined,
    catalog: Catalog,
    report: (error: DatasyncError) => void,
  ) {
    this.#roots = roots
    this.#statusPath = statusPath
    this.#catalog = catalog
    this.#report = report
  }

  /** The path is a configured path or lies under a configured directory (no dot names below). */
  inData(path: string): boolean {
    if (path === this.#statusPath) return false
    return this.#roots.some(
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
  isAncestor(path: string): boolean {
    return this.#roots.some((root) => isUnder(root, path))
  }

  /** A configured path, or a file whose extension says data. */
  isDataFile(path: string): boolean {
    return this.#roots.includes(path) || formatOf(path) !== undefined
  }

  /** A change of a configured directory, or of a directory on the way to a configured path. */
  isStructural(path: string): boolean {
    return (
      this.isAncestor(path) || (this.#roots.includes(path) && this.#rootIds.get(path) !== 'file')
    )
  }

  /** Reads every configured path; known files not found any more are `gone`. */
  async fullScan(): Promise<Map<string, ReadOutcome>> {
    const found: string[] = []
    const failed = new Map<string, DatasyncError>()
    for (const root of this.#roots) {
      const id = await identify(root)
      this.#rootIds.set(root, id)
      if (id === 'missing') {
        this.#reportMissing(root)
        continue
      }
      this.#missingReported.delete(root)
      if (id.startsWith('dir:')) {
        const listing = await walk(root, this.#accept)
        found.push(...listing.files)
        for (const [dir, error] of listing.failed) failed.set(dir, error)
      } else if (root !== this.#statusPath) {
        found.push(root)
      }
    }
    const updates = new Map<string, ReadOutcome>()
    await readDataFiles([...new Set(found)], READ_CONCURRENCY, updates)
    for (const file of this.#catalog.knownFiles()) {
      if (!updates.has(file) && !underAny(file, failed)) updates.set(file, { kind: 'gone' })
    }
    this.#catalog.forgetDirProblems((dir) => !failed.has(dir))
    for (const [dir, error] of failed) this.#catalog.setDirProblem(dir, error)
    return updates
  }

  /** Looks at one path again, into `updates`: a file, a directory (walked) or something gone. */
  async reconcile(path: string, updates: Map<string, ReadOutcome>): Promise<void> {
    if (!this.inData(path)) return
    const id = await identify(path)
    if (id === 'missing') {
      for (const file of this.#catalog.knownFiles()) {
        if (isAtOrUnder(file, path)) updates.set(file, { kind: 'gone' })
      }
      this.#catalog.forgetDirProblems((dir) => isAtOrUnder(dir, path))
    } else if (id.startsWith('dir:')) {
      const listing = await walk(path, this.#accept)
      const unread = listing.files.filter((file) => !updates.has(file))
      await readDataFiles(unread, READ_CONCURRENCY, updates)
      const listed = new Set(listing.files)
      for (const file of this.#catalog.knownFiles()) {
        if (isUnder(file, path) && !listed.has(file) && !underAny(file, listing.failed)) {
          updates.set(file, { kind: 'gone' })
        }
      }
      this.#catalog.forgetDirProblems((dir) => isAtOrUnder(dir, path))
      for (const [dir, error] of listing.failed) this.#catalog.setDirProblem(dir, error)
    } else if (id === 'file' && this.isDataFile(path)) {
      updates.set(path, await readDataFile(path))
    }
  }

  /** Looks at the configured paths again after a structural change. */
  async lookAtRoots(): Promise<RootsLook> {
    let rescan = false
    let replaced = false
    for (const root of this.#roots) {
      const before = this.#rootIds.get(root)
      const now = await identify(root)
      this.#rootIds.set(root, now)
      if (now.startsWith('dir:') && now !== before) {
        rescan = true
        // Another directory in its place (a symbolic link switched, a directory swapped in by a
        // rename): chokidar may still watch the old one.
        replaced ||= before?.startsWith('dir:') === true
      }
    }
    return { rescan, replaced }
  }

  /** Whether a walk takes a file: a data file that is not the status file. */
  readonly #accept = (path: string): boolean =>
    path !== this.#statusPath && formatOf(path) !== undefined

  #reportMissing(root: string): void {
    if (this.#missingReported.has(root)) return
    this.#missingReported.add(root)
    this.#report(
      new ConfigError(
        root,
        undefined,
        'the configured path does not exist (yet); it is watched and read when it appears',
      ),
    )
  }
}
