import {
  Observable,
  Subject,
  defer,
  map,
  of,
  timer,
  type Subscriber,
  type Subscription,
} from 'rxjs'
import { CapabilityError, DatasyncError, describe } from '../../core/errors.js'
import type { Change, KeyValue, SnapshotCause, StoreEvent } from '../../core/events.js'
import { matchesAny } from '../../core/snapshot.js'
import type { Capabilities, DeleteOptions, PutOptions, TxnOp, TxnResult } from '../../core/store.js'
import { argumentChecks, type ArgumentChecks } from '../../internal/checks.js'
import { StoreEdge } from '../../internal/edge.js'
import { Catalog } from './catalog.js'
import { NAME, toDatasyncError } from './errors.js'
import type { ReadOutcome } from './files.js'
import { JobQueue } from './jobs.js'
import { resolveOptions, type FileStore, type FileStoreOptions } from './options.js'
import { Scanner } from './scan.js'
import { StatusFile } from './status-file.js'
import { FileWatcher } from './watcher.js'

const CAPABILITIES: Capabilities = Object.freeze({
  write: false,
  txn: false,
  ttl: false,
  nativePrev: true,
  resumable: false,
  atomicPrefixDelete: false,
})

/** A watch of the store. */
interface Watch {
  readonly prefixes: readonly string[]
  readonly subscriber: Subscriber<StoreEvent<Uint8Array>>
  /** It has its first snapshot (until then it waits for the file watcher's first scan). */
  live: boolean
}

/**
 * Creates a read-only store over JSON and YAML files: `{ "data": [ { "key": ..., "value": ... } ] }`.
 * A value is any JSON or YAML value, served as the UTF-8 bytes of its JSON text (the `json()`
 * codec decodes it); a `text` entry is served as the string itself.
 *
 * A watch reads the files when its file watcher is ready, then the changes in batches, each one
 * `changes` event at one revision with `prev`. A file renamed or saved atomically changes only
 * the keys whose values changed. A file that cannot be read or parsed keeps its last good keys
 * (its error, with file and line, goes to `errors$`, and `status$` is `degraded`). A key in
 * several files comes from the file whose path sorts first. `put`, `delete` and `txn` fail with a
 * `CapabilityError`: change the files instead. The whole behaviour is in the backend's README.
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
  const settings = resolveOptions(options)
  const edge = new StoreEdge({
    name: NAME,
    mapError: toDatasyncError,
    // The status says what the files say, not whether a read answered.
    operationsReportHealth: false,
  })
  // One part: the status names the watcher's failure, else the first directory that cannot be
  // listed, else the first file that cannot be read or parsed (by path).
  const health = edge.health.part()
  const errors = new Subject<DatasyncError>()
  const catalog = new Catalog(report)
  const scanner = new Scanner(settings.paths, settings.statusPath, catalog, report)
  const jobs = new JobQueue()
  const statusFile = new StatusFile(settings.statusPath, settings.statusFormat)
  const watches = new Set<Watch>()
  const closing = new Set<Promise<unknown>>()
  let watcher: FileWatcher | undefined
  /** The file watcher's stop, a tick after the last watch left (see `watch`). */
  let lingering: Subscription | undefined
  /** A scan was applied: the status says ready or degraded from now on. */
  let scanned = false

  function report(error: DatasyncError): void {
    if (!edge.closed) errors.next(error)
  }

  function internal(error: unknown): void {
    report(
      error instanceof DatasyncError
        ? error
        : new DatasyncError('internal', `${NAME}: ${describe(error)}`, { cause: error }),
    )
  }

  function updateStatus(): void {
    if (!scanned) return
    const problem = watcher?.problem ?? catalog.problem()
    // The scan read the files: a broken one is an answer too (the store is past connecting).
    if (problem === undefined) health.up()
    else health.down(problem, true)
  }

  /**
   * Applies what a job read, as one revision, and tells the watches: pending ones get their
   * first snapshot (when `flush`), live ones the changes, or a snapshot with `cause`.
   */
  function apply(
    updates: ReadonlyMap<string, ReadOutcome>,
    cause: SnapshotCause | undefined,
    flush: boolean,
  ): void {
    const changes = catalog.apply(updates)
    scanned = true
    updateStatus()
    deliver(changes, cause, flush)
  }

  function deliver(
    changes: readonly Change<Uint8Array>[],
    cause: SnapshotCause | undefined,
    flush: boolean,
  ): void {
    for (const watch of [...watches]) {
      if (!watches.has(watch)) continue
      if (!watch.live) {
        if (flush) {
          watch.live = true
          watch.subscriber.next(catalog.snapshot(watch.prefixes, 'startup'))
        }
      } else if (cause !== undefined && cause !== 'startup') {
        watch.subscriber.next(catalog.snapshot(watch.prefixes, cause))
      } else if (changes.length > 0) {
        const mine = changes.filter((change) => matchesAny(change.key, watch.prefixes))
        if (mine.length > 0) {
          watch.subscriber.next({ type: 'changes', revision: catalog.revision, changes: mine })
        }
      }
    }
  }

  function startWatcher(): FileWatcher {
    const started = new FileWatcher({
      options: settings,
      scanner,
      jobs,
      apply,
      report,
      internal,
      problemChanged: updateStatus,
      closing: (done) => {
        closing.add(done)
        void done.then(() => closing.delete(done))
      },
    })
    watcher = started
    return started
  }

  function stopWatcher(): void {
    lingering?.unsubscribe()
    lingering = undefined
    const stopping = watcher
    watcher = undefined
    stopping?.stop()
  }

  /** Brings the state up to date for a read: from the watch if one runs, else from the files. */
  function fresh(): Observable<unknown> {
    if (watcher?.synced === true) return of(undefined)
    return jobs.enqueue(async () => {
      if (watcher?.synced === true) return
      apply(await scanner.fullScan(), undefined, false)
    })
  }

  /** A read: answered from the state, brought up to date first. */
  function read<T>(what: string, answer: () => T): Observable<T> {
    return edge.op(what, () => fresh().pipe(map(answer)))
  }

  function refuse<T>(capability: string, detail: string): Observable<T> {
    return edge.op<T>(detail, () => {
      throw new CapabilityError(
        NAME,
        capability,
        `${detail}: its data comes from the files under configuration-paths; change the files instead`,
      )
    })
  }

  return {
    name: NAME,
    capabilities: CAPABILITIES,
    status$: edge.health.status$,
    errors$: errors.asObservable(),

    watch(prefixes: readonly string[]): Observable<StoreEvent<Uint8Array>> {
      return edge.watch(
        new Observable<StoreEvent<Uint8Array>>((subscriber) => {
          assertPrefixes(prefixes)
          const watch: Watch = { prefixes: [...prefixes], subscriber, live: false }
          watches.add(watch)
          lingering?.unsubscribe()
          lingering = undefined
          const running = watcher ?? startWatcher()
          if (running.synced) {
            watch.live = true
            subscriber.next(catalog.snapshot(watch.prefixes, 'startup'))
          }
          return () => {
            watches.delete(watch)
            if (watches.size > 0 || lingering !== undefined) return
            // Stopped a tick later: a watch replaced at once (the orchestrator watches again
            // when a consumer registers) keeps the file watcher, so the files are not read
            // afresh in the middle of an editor's save (a file seen gone there would have its
            // keys deleted before the hold could know it) and no moment goes unwatched.
            lingering = timer(0, settings.scheduler).subscribe(() => {
              lingering = undefined
              if (watches.size === 0) stopWatcher()
            })
          }
        }),
      )
    },

    get(key: string): Observable<KeyValue<Uint8Array> | undefined> {
      return defer(() => {
        assertKey('get', key)
        return read(`get '${key}'`, () => catalog.get(key))
      })
    },

    list(prefix: string): Observable<readonly KeyValue<Uint8Array>[]> {
      return defer(() => {
        assertPrefix('list', prefix)
        return read(`list '${prefix}'`, () => catalog.itemsUnder([prefix]))
      })
    },

    listKeys(prefix: string): Observable<readonly string[]> {
      return defer(() => {
        assertPrefix('listKeys', prefix)
        return read(`listKeys '${prefix}'`, () =>
          catalog.itemsUnder([prefix]).map((item) => item.key),
        )
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
        edge.assertOpen()
        return statusFile.publish(state)
      })
    },

    async close(): Promise<void> {
      // The watches complete as the edge closes; the last one stops the file watcher.
      if (edge.close()) {
        stopWatcher()
        errors.complete()
      }
      await Promise.all([...closing])
      await jobs.idle()
      await statusFile.idle()
    },
  }
}

const check: ArgumentChecks = argumentChecks({ backend: NAME })
const assertKey: ArgumentChecks['key'] = check.key
const assertPrefix: ArgumentChecks['prefix'] = check.prefix
const assertPrefixes: ArgumentChecks['prefixes'] = check.prefixes
