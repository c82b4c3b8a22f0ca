import { ConfigError, type DatasyncError } from '../../core/errors.js'
import type { Change, KeyValue, SnapshotCause, StoreEvent } from '../../core/events.js'
import { revision, ZERO_REVISION, type Revision } from '../../core/revision.js'
import { matchesAny } from '../../core/snapshot.js'
import { byKey, compareKeys } from '../../internal/order.js'
import type { ReadOutcome } from './files.js'
import type { DataEntry } from './format.js'

/** What the store serves for a key: the winning file's entry. */
interface Item {
  readonly kv: KeyValue<Uint8Array>
  readonly raw: string
  readonly file: string
}

const EMPTY_ENTRIES: ReadonlyMap<string, DataEntry> = new Map()

/**
 * What the store knows of its files, in memory: each file's last good keys, for each key the
 * files that define it, the value served for each key, the revision, and the problems found.
 * It reads nothing: the scan reads the files and hands their outcomes to {@link apply}.
 *
 * A key defined in several files comes from the file whose path sorts first; the others raise
 * a warning, once per set of files. A file that cannot be read or parsed keeps its last good
 * keys and counts as a problem until it reads well or is gone.
 */
export class Catalog {
  /** Each file's last good keys. */
  readonly #files = new Map<string, ReadonlyMap<string, DataEntry>>()
  /** For each key, the files that define it, sorted: the first wins. */
  readonly #owners = new Map<string, string[]>()
  readonly #served = new Map<string, Item>()
  readonly #fileProblems = new Map<string, DatasyncError>()
  readonly #dirProblems = new Map<string, DatasyncError>()
  /** Each file's warnings as last reported (so the same ones are not reported again). */
  readonly #fileWarnings = new Map<string, string>()
  /** Each key in several files, with the files of its last warning. */
  readonly #duplicates = new Map<string, string>()
  readonly #report: (error: DatasyncError) => void
  #revision: Revision = ZERO_REVISION

  /** `report` gets every problem and warning as it is found. */
  constructor(report: (error: DatasyncError) => void) {
    this.#report = report
  }

  /** The revision of the last applied batch that changed something. */
  get revision(): Revision {
    return this.#revision
  }

  /** The files it knows: those with keys, and those that could not be read. */
  knownFiles(): ReadonlySet<string> {
    return new Set([...this.#files.keys(), ...this.#fileProblems.keys()])
  }

  /** The value served for `key`. */
  get(key: string): KeyValue<Uint8Array> | undefined {
    return this.#served.get(key)?.kv
  }

  /** The served items under any of `prefixes`, in key order. */
  itemsUnder(prefixes: readonly string[]): KeyValue<Uint8Array>[] {
    const items: KeyValue<Uint8Array>[] = []
    for (const [key, item] of this.#served) if (matchesAny(key, prefixes)) items.push(item.kv)
    return items.sort(byKey)
  }

  /** A snapshot of the items under `prefixes`, at the current revision. */
  snapshot(prefixes: readonly string[], cause: SnapshotCause): StoreEvent<Uint8Array> {
    return { type: 'snapshot', revision: this.#revision, items: this.itemsUnder(prefixes), cause }
  }

  /**
   * The problem the status names: the directory that cannot be listed whose path sorts first,
   * else the file that cannot be read or parsed whose path sorts first.
   */
  problem(): DatasyncError | undefined {
    return firstByPath(this.#dirProblems) ?? firstByPath(this.#fileProblems)
  }

  /** A directory cannot be listed (reported unless it was already, with the same message). */
  setDirProblem(dir: string, error: DatasyncError): void {
    if (this.#dirProblems.get(dir)?.message !== error.message) this.#report(error)
    this.#dirProblems.set(dir, error)
  }

  /** Forgets the problems of the directories `where` selects. */
  forgetDirProblems(where: (dir: string) => boolean): void {
    for (const dir of [...this.#dirProblems.keys()]) if (where(dir)) this.#dirProblems.delete(dir)
  }

  /**
   * Applies what a scan read, as one revision: the changes of the served values, in key order,
   * each with the value served before (`prev`). The revision moves only when something changed.
   */
  apply(updates: ReadonlyMap<string, ReadOutcome>): readonly Change<Uint8Array>[] {
    const touched = new Set<string>()
    for (const [file, outcome] of updates) {
      switch (outcome.kind) {
        case 'gone':
          for (const key of this.#files.get(file)?.keys() ?? []) {
            this.#removeOwner(key, file)
            touched.add(key)
          }
          this.#files.delete(file)
          this.#fileProblems.delete(file)
          this.#fileWarnings.delete(file)
          break
        case 'ok':
          this.#read(file, outcome.parsed.entries, touched)
          this.#warn(file, outcome.parsed.warnings)
          break
        case 'error':
          if (this.#fileProblems.get(file)?.message !== outcome.error.message) {
            this.#report(outcome.error)
          }
          this.#fileProblems.set(file, outcome.error)
          break
        case 'unsettled':
          break
      }
    }
    const next = revision(this.#revision + 1n)
    const changes: Change<Uint8Array>[] = []
    for (const key of [...touched].sort(compareKeys)) {
      const change = this.#serve(key, next)
      if (change !== undefined) changes.push(change)
    }
    if (changes.length > 0) this.#revision = next
    return changes
  }

  /** A file read well: its keys replace its previous keys. */
  #read(file: string, after: ReadonlyMap<string, DataEntry>, touched: Set<string>): void {
    const before = this.#files.get(file) ?? EMPTY_ENTRIES
    for (const [key, entry] of before) {
      const next = after.get(key)
      if (next === undefined) {
        this.#removeOwner(key, file)
        touched.add(key)
      } else if (next.raw !== entry.raw) {
        touched.add(key)
      }
    }
    for (const key of after.keys()) {
      if (!before.has(key)) {
        this.#addOwner(key, file)
        touched.add(key)
      }
    }
    this.#files.set(file, after)
    this.#fileProblems.delete(file)
  }

  /** Reports a file's warnings when they differ from those reported last. */
  #warn(file: string, warnings: readonly DatasyncError[]): void {
    const signature = warnings.map((warning) => warning.message).join('\n')
    if (signature !== (this.#fileWarnings.get(file) ?? '')) warnings.forEach(this.#report)
    if (signature === '') this.#fileWarnings.delete(file)
    else this.#fileWarnings.set(file, signature)
  }

  /** Serves the winning definition of `key`; the change, if the served value changed. */
  #serve(key: string, next: Revision): Change<Uint8Array> | undefined {
    const list = this.#owners.get(key)
    this.#checkDuplicate(key, list)
    const winner = list?.[0]
    const entry = winner === undefined ? undefined : this.#files.get(winner)?.get(key)
    const old = this.#served.get(key)
    if (winner === undefined || entry === undefined) {
      if (old === undefined) return undefined
      this.#served.delete(key)
      return { op: 'delete', key, prev: old.kv.value, revision: next }
    }
    if (old === undefined || old.raw !== entry.raw) {
      const kv = Object.freeze({ key, value: entry.value, revision: next })
      this.#served.set(key, { kv, raw: entry.raw, file: winner })
      return old === undefined
        ? { op: 'put', key, value: entry.value, revision: next }
        : { op: 'put', key, value: entry.value, prev: old.kv.value, revision: next }
    }
    if (old.file !== winner) this.#served.set(key, { ...old, file: winner })
    return undefined
  }

  #addOwner(key: string, file: string): void {
    const list = this.#owners.get(key)
    if (list === undefined) {
      this.#owners.set(key, [file])
      return
    }
    if (list.includes(file)) return
    list.push(file)
    list.sort()
  }

  #removeOwner(key: string, file: string): void {
    const list = this.#owners.get(key)
    if (list === undefined) return
    const index = list.indexOf(file)
    if (index >= 0) list.splice(index, 1)
    if (list.length === 0) this.#owners.delete(key)
  }

  /** Warns about a key defined in several files, once per set of files. */
  #checkDuplicate(key: string, list: readonly string[] | undefined): void {
    if (list === undefined || list.length < 2) {
      this.#duplicates.delete(key)
      return
    }
    const signature = list.join('\n')
    if (this.#duplicates.get(key) === signature) return
    this.#duplicates.set(key, signature)
    const [winner, ...others] = list
    this.#report(
      new ConfigError(
        others.join(', '),
        undefined,
        `key '${key}' is also defined in ${winner}, whose path sorts first: that definition is used; define each key in one file`,
      ),
    )
  }
}

function firstByPath(problems: ReadonlyMap<string, DatasyncError>): DatasyncError | undefined {
  let first: string | undefined
  for (const path of problems.keys()) if (first === undefined || path < first) first = path
  return first === undefined ? undefined : problems.get(first)
}
