import type { SnapshotPersistence } from '../types.js'
import { fromBase64, toBase64 } from './base64.js'

/** The part of the Web Storage API (`localStorage`, `sessionStorage`) a snapshot needs. */
export interface StorageLike {
  getItem(key: string): string | null
  setItem(key: string, value: string): void
}

/**
 * Keeps the orchestrator's snapshot (`persist`) under `key` in a browser's Web Storage:
 * `localStorage` unless another storage is given, in base64 (Web Storage holds text only).
 * `setItem` replaces the item as a whole, so a reader never sees half a snapshot. Web Storage
 * holds about 5 MB per origin, and base64 makes a snapshot a third larger (a failed save,
 * quota exceeded, is reported and the previous snapshot stays): for larger data keep the
 * snapshot in IndexedDB with your own {@link SnapshotPersistence} (`load` and `save` may return
 * Promises, as IndexedDB's wrappers do).
 *
 * @example
 * ```ts
 * import { createDatasync, webStoragePersistence } from 'rx-datasync'
 * const sync = createDatasync(store, { persist: { to: webStoragePersistence('app-config') } })
 * ```
 *
 * @throws TypeError when no storage is given and there is no `localStorage` (not a browser).
 */
export function webStoragePersistence(key: string, storage?: StorageLike): SnapshotPersistence {
  if (typeof key !== 'string' || key === '') {
    throw new TypeError(
      `webStoragePersistence: expected a non-empty key, got ${JSON.stringify(key)}`,
    )
  }
  const found =
    storage ?? (globalThis as unknown as { localStorage?: StorageLike }).localStorage ?? undefined
  if (found === undefined) {
    throw new TypeError(
      'webStoragePersistence: there is no localStorage here (not a browser?); pass a storage, or use fileSnapshotPersistence from rx-datasync/snapshot-file in Node',
    )
  }
  return {
    name: `web storage item '${key}'`,
    load: () => {
      const saved = found.getItem(key) ?? undefined
      // Text that is not base64 (version 1 was JSON) is handed over as it is: the format says
      // what it is.
      if (saved === undefined || !/^[A-Za-z0-9+/]*=*$/.test(saved)) return Promise.resolve(saved)
      return Promise.resolve(fromBase64(saved))
    },
    save: (data: Uint8Array) => {
      found.setItem(key, toBase64(data))
      return Promise.resolve()
    },
  }
}
