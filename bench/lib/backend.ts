/** What a workload needs from a backend: the raw client's side, and our store. */
import type { KvStore } from 'rx-datasync'
import type { DataSet } from './data.js'

/** The raw client's listing of a data set: one Map of parsed values per consumer prefix. */
export type RawListing = Map<string, unknown>[]

/** A raw watcher; `close` ends it. */
export interface RawWatcher {
  close(): Promise<void>
}

export interface Backend {
  readonly name: 'etcd' | 'redis' | 'postgres' | 'nats'
  /** The name in the table: the backend, and the store options when they are not the defaults. */
  readonly label: string
  /** Options of our store beyond the address (the memory child creates its own store). */
  readonly storeOptions: { readonly watchMemory?: 'values' | 'lean' }
  /** What a child process needs to connect (`endpoints` for etcd, the port for Redis). */
  readonly endpoint: string
  /** The server's version, for the header. */
  version(): Promise<string>
  /** Writes every key of the data set with the raw client. */
  load(data: DataSet, generation?: number): Promise<void>
  /** Deletes every key under `root`. */
  clear(root: string): Promise<void>
  /** Hand-written resync with a fresh raw client: list the prefixes at one point, parse every value. */
  rawResync(
    prefixes: readonly string[],
  ): Promise<{ ms: number; cpuMs: number; listing: RawListing; close: () => Promise<void> }>
  /** Our store, connected (one request made), ready to be watched. */
  ourStore(): Promise<KvStore>
  /** A raw watcher of `prefix`: calls `onPut` with each put key and its parsed value. */
  rawWatch(prefix: string, onPut: (key: string, value: unknown) => void): Promise<RawWatcher>
  /** One put through the raw client (already connected). */
  rawPut(key: string, value: string): Promise<void>
  /** Closes the raw clients this backend holds. */
  close(): Promise<void>
}
