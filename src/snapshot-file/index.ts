/**
 * `rx-datasync/snapshot-file`: the orchestrator's saved snapshot (`persist`) in a file, for Node.
 * Kept out of the core because it needs `node:fs`; a browser keeps its snapshot with
 * `webStoragePersistence` (localStorage) from the core, or in IndexedDB with its own
 * `SnapshotPersistence`.
 */
import { Buffer } from 'node:buffer'
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import type { SnapshotPersistence } from '../sync/types.js'

export type { SnapshotPersistence } from '../sync/types.js'

/** Options of {@link fileSnapshotPersistence}. */
export interface FileSnapshotOptions {
  /** The file's permission bits when it is created. @default 0o600 (the owner only) */
  readonly mode?: number
}

let sequence = 0

/**
 * Keeps the orchestrator's snapshot in the file at `path` (its directory is created if missing).
 * A save is atomic and durable: the bytes go to a temporary file beside it, which is flushed to
 * disk (fsync), renamed over `path`, and the directory flushed too, so after a crash the file
 * holds the old snapshot or the new one, never a mix (the checksum inside catches anything
 * else). A missing file loads as "nothing saved"; any other read failure (permissions, a
 * directory in its place) is reported by the orchestrator as `unreadable`, and the normal resync
 * runs.
 *
 * @example
 * ```ts
 * import { createDatasync } from 'rx-datasync'
 * import { fileSnapshotPersistence } from 'rx-datasync/snapshot-file'
 * const sync = createDatasync(store, {
 *   persist: { to: fileSnapshotPersistence('/var/lib/agent/config.snapshot'), every: '5s' },
 * })
 * ```
 *
 * @throws TypeError when `path` is not a non-empty string.
 */
export function fileSnapshotPersistence(
  path: string,
  options: FileSnapshotOptions = {},
): SnapshotPersistence {
  if (typeof path !== 'string' || path === '') {
    throw new TypeError(
      `fileSnapshotPersistence: expected a file path, got ${JSON.stringify(path)}`,
    )
  }
  const mode = options.mode ?? 0o600
  const directory = dirname(path)
  return {
    name: `file ${path}`,
    async load() {
      let file
      try {
        file = await open(path, 'r')
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
        throw error
      }
      try {
        return await readWhole(file)
      } finally {
        await file.close()
      }
    },
    async save(data: Uint8Array) {
      await mkdir(directory, { recursive: true })
      const temporary = join(directory, `.${basename(path)}.${process.pid}.${++sequence}.tmp`)
      try {
        const file = await open(temporary, 'w', mode)
        try {
          await file.writeFile(data)
          await file.sync()
        } finally {
          await file.close()
        }
        await rename(temporary, path)
      } catch (error) {
        await rm(temporary, { force: true })
        throw error
      }
      await syncDirectory(directory)
    },
  }
}

/**
 * The bytes of an open file (the checksum is taken over them as they are, with no decoding
 * first), read into one buffer of the file's size: `readFile` reads in 512 KiB chunks and joins
 * them, which costs a copy and tens of ms at the 11 MB of 100k keys. A save replaces the file by
 * a rename, so the open file does not change under the read.
 */
async function readWhole(file: FileHandle): Promise<Uint8Array> {
  const { size } = await file.stat()
  const data = Buffer.allocUnsafe(size)
  let at = 0
  while (at < size) {
    const { bytesRead } = await file.read(data, at, size - at, at)
    if (bytesRead === 0) break
    at += bytesRead
  }
  return new Uint8Array(data.buffer, data.byteOffset, at)
}

/** Flushes a directory's entries (the rename) to disk; not every platform allows it. */
async function syncDirectory(directory: string): Promise<void> {
  let handle
  try {
    handle = await open(directory, 'r')
    await handle.sync()
  } catch {
    // Windows cannot open a directory: the rename is as durable as the platform makes it.
  } finally {
    await handle?.close()
  }
}
