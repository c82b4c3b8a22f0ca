import type { ObservableInput } from 'rxjs'
import type { Duration } from '../../core/duration.js'

/**
 * Where a saved snapshot lives: a file (`fileSnapshotPersistence` from `rx-datasync/snapshot-file`,
 * Node), a browser's `localStorage` (`webStoragePersistence`), or your own. `load` and
 * `save` may return a Promise or an Observable.
 */
export interface SnapshotPersistence {
  /** What it is, for messages: a file's path, a storage key. */
  readonly name: string
  /** The bytes `save` got (text: version 1), or undefined when none; fails when unreadable. */
  load(): ObservableInput<string | Uint8Array | undefined>
  /** Replaces the saved bytes as a whole: a reader sees the old bytes or the new, never a mix. */
  save(data: Uint8Array): ObservableInput<unknown>
}

/** How values that are not bytes go into the snapshot and back (as JSON-compatible values). */
export interface PersistValues {
  encode(value: unknown): unknown
  decode(saved: unknown): unknown
}

/** Options of `DatasyncOptions.persist`. */
export interface PersistOptions {
  /** Where the snapshot is kept. */
  readonly to: SnapshotPersistence
  /**
   * At most one save per this long while the data changes (each save writes every key, so
   * this bounds the cost); the first change after a quiet time is saved this long after it.
   * @default '2s'
   */
  readonly every?: Duration
  /**
   * How values are written: by default a `Uint8Array` as its bytes, anything else as JSON. Give
   * your own for values JSON does not keep (dates, maps).
   */
  readonly values?: PersistValues
  /**
   * How long the first start waits for the store to tell its identity (see `KvStore.identity`)
   * before it gives the saved snapshot to the consumers anyway. A store that is up answers in a
   * round trip: a snapshot saved from another store is then reported and not applied. One that
   * does not answer in time is taken for down: the consumers get the saved snapshot (reason
   * `restored`, status `restored`), and the watch waits for the answer: the same store, it
   * resumes; another, a full resync replaces what was restored (reported as `identity`).
   * @default '1s'
   */
  readonly identityWait?: Duration
}
