import type { Stats } from 'node:fs'
import { mkdir, open, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { DatasyncError } from '../../core/errors.js'
import { fsError } from './errors.js'
import { parseDataFile, type ParsedFile } from './format.js'

// The file-system edge of the FileDB backend: every node:fs call is here, and every error they
// raise is mapped to a DatasyncError through `fsError` (errors.ts).

/** What reading one data file found. */
export type ReadOutcome =
  /** The file parsed: its keys replace the file's previous keys. */
  | { readonly kind: 'ok'; readonly parsed: ParsedFile }
  /** It cannot be read or parsed: its last good keys stay, the error is reported. */
  | { readonly kind: 'error'; readonly error: DatasyncError }
  /** It does not exist (any more): its keys go. */
  | { readonly kind: 'gone' }
  /** It changed while it was read (a writer is busy): read it again later. */
  | { readonly kind: 'unsettled' }

const GONE: ReadOutcome = Object.freeze({ kind: 'gone' })
const UNSETTLED: ReadOutcome = Object.freeze({ kind: 'unsettled' })

/** Error codes that mean "not there": the path, or a directory on the way, is missing. */
const MISSING = new Set(['ENOENT', 'ENOTDIR'])

function isMissing(error: unknown): boolean {
  return MISSING.has((error as NodeJS.ErrnoException | undefined)?.code ?? '')
}

/**
 * Reads and parses a data file. When the file changed while it was read (its size, mtime or
 * inode moved), the content may be half-written: the outcome is `unsettled`.
 */
export async function readDataFile(path: string): Promise<ReadOutcome> {
  let before: Stats
  let text: string
  try {
    const handle = await open(path, 'r')
    try {
      before = await handle.stat()
      if (before.isDirectory()) return GONE
      text = await handle.readFile('utf8')
    } finally {
      await handle.close()
    }
  } catch (error) {
    if (isMissing(error)) return GONE
    return { kind: 'error', error: fsError(path, 'read the file', error) }
  }
  let outcome: ReadOutcome
  try {
    outcome = { kind: 'ok', parsed: parseDataFile(path, text) }
  } catch (error) {
    outcome = {
      kind: 'error',
      error: error instanceof DatasyncError ? error : fsError(path, 'parse the file', error),
    }
  }
  try {
    const after = await stat(path)
    if (
      after.ino !== before.ino ||
      after.size !== before.size ||
      after.mtimeMs !== before.mtimeMs
    ) {
      return UNSETTLED
    }
  } catch (error) {
    if (isMissing(error)) return GONE
  }
  return outcome
}

/**
 * What is at a path: `missing`, `file`, `dir:<dev>:<ino>` (so a directory removed and recreated
 * differs), or `other`. Symbolic links are followed.
 */
export async function identify(path: string): Promise<string> {
  try {
    const stats = await stat(path)
    if (stats.isDirectory()) return `dir:${stats.dev}:${stats.ino}`
    return stats.isFile() ? 'file' : 'other'
  } catch (error) {
    // An unreadable parent counts as missing here; reading the files reports the error.
    return isMissing(error) ? 'missing' : 'other'
  }
}

/** The path itself when it exists, else its nearest existing ancestor. */
export async function nearestExisting(path: string): Promise<string> {
  for (let current = path; ; current = dirname(current)) {
    if ((await identify(current)) !== 'missing' || dirname(current) === current) return current
  }
}

/** What a directory walk found. */
export interface Walk {
  /** Every file accepted, sorted. */
  readonly files: string[]
  /** Directories that could not be listed, with the error. */
  readonly failed: Map<string, DatasyncError>
}

/**
 * Lists the files under `dir` recursively, following symbolic links (each directory once),
 * skipping entries whose name starts with '.' and files `accept` refuses.
 */
export async function walk(dir: string, accept: (path: string) => boolean): Promise<Walk> {
  const files: string[] = []
  const failed = new Map<string, DatasyncError>()
  const visited = new Set<string>()
  const visit = async (current: string): Promise<void> => {
    let entries
    try {
      const stats = await stat(current)
      const id = `${stats.dev}:${stats.ino}`
      if (visited.has(id)) return
      visited.add(id)
      entries = await readdir(current, { withFileTypes: true })
    } catch (error) {
      if (!isMissing(error)) failed.set(current, fsError(current, 'list the directory', error))
      return
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue
      const path = join(current, entry.name)
      let isDir = entry.isDirectory()
      let isFile = entry.isFile()
      if (entry.isSymbolicLink()) {
        const target = await identify(path)
        isDir = target.startsWith('dir:')
        isFile = target === 'file'
      }
      if (isDir) await visit(path)
      else if (isFile && accept(path)) files.push(path)
    }
  }
  await visit(dir)
  files.sort()
  return { files, failed }
}

let temporaries = 0

/**
 * Writes a file atomically: a temporary file beside it (a dot file, so watchers skip it), then a
 * rename over it. Creates the directory when missing.
 */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const dir = dirname(path)
  temporaries++
  const temporary = join(dir, `.${basename(path)}.${process.pid}.${temporaries}.tmp`)
  try {
    await mkdir(dir, { recursive: true })
    await writeFile(temporary, text, 'utf8')
    await rename(temporary, path)
  } catch (error) {
    await unlink(temporary).catch(() => undefined)
    throw fsError(path, 'write the status file', error)
  }
}

/** Reads the data files, at most `limit` at a time, into `into`. */
export async function readDataFiles(
  paths: readonly string[],
  limit: number,
  into: Map<string, ReadOutcome>,
): Promise<void> {
  const queue = [...paths]
  const worker = async () => {
    for (let path = queue.shift(); path !== undefined; path = queue.shift()) {
      into.set(path, await readDataFile(path))
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, queue.length) }, worker))
}
