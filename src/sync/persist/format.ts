import { DatasyncError } from '../../core/errors.js'
import type { KeyValue } from '../../core/events.js'
import { revision, type Revision } from '../../core/revision.js'
import { compareKeys } from '../../core/order.js'
import type { PersistValues } from '../types.js'

/**
 * The snapshot text (docs/design.md §5): a header line, then the body.
 *
 * ```
 * {"format":"rx-datasync/snapshot","version":1,"bytes":1234,"sha256":"9f86…"}
 * {"store":"etcd","revision":"42","prefixes":["cfg/"],"savedAt":1764…,"items":[["cfg/a","40","s","on"],…]}
 * ```
 *
 * `bytes` and `sha256` are the UTF-8 length and SHA-256 of the body, so a truncated or altered
 * file is told apart from a sound one before anything is parsed. Each item is `[key, revision,
 * kind, data]`: kind `s` is a `Uint8Array` value that is valid UTF-8, as text; `b` any other
 * `Uint8Array`, in base64; `j` any other value, as JSON (or `PersistOptions.values`).
 */
export const FORMAT = 'rx-datasync/snapshot'
/** The format version this library writes and reads. */
export const VERSION = 1

/**
 * What went wrong with a saved snapshot:
 * - `unreadable`: the persistence could not read it (a file's permissions, a disk error).
 * - `corrupt`: not a snapshot, or its header or body does not parse.
 * - `truncated`: shorter than its header says.
 * - `checksum`: its SHA-256 does not match the header's.
 * - `version`: written by another format version.
 * - `prefixes`: saved for another set of prefixes than the consumers follow now.
 * - `write`: a save failed (the previous snapshot stays).
 */
export type PersistProblem =
  'unreadable' | 'corrupt' | 'truncated' | 'checksum' | 'version' | 'prefixes' | 'write'

/**
 * A saved snapshot was not applied (or not saved): reported on `errors$`, and the normal resync
 * from the store runs. `source` names the file or storage key, `problem` says what was wrong.
 */
export class SnapshotPersistError extends DatasyncError {
  override readonly name = 'SnapshotPersistError'
  constructor(
    readonly source: string,
    readonly problem: PersistProblem,
    message: string,
    options: { readonly cause?: unknown } = {},
  ) {
    const tail =
      problem === 'write'
        ? 'the previous snapshot is kept'
        : 'not applied; the consumers get the normal resync from the store'
    super(
      problem === 'unreadable' || problem === 'write' ? 'unavailable' : 'codec',
      `snapshot ${source}: ${problem}: ${message}; ${tail}`,
      options,
    )
  }
}

/** A snapshot as saved or loaded: the store's content under `prefixes` at `revision`. */
export interface SavedSnapshot<R> {
  readonly store: string
  readonly revision: Revision
  /** The watched prefixes, sorted, each once. */
  readonly prefixes: readonly string[]
  /** When it was saved, in the scheduler's milliseconds. */
  readonly savedAt: number
  readonly items: readonly KeyValue<R>[]
}

/** The prefixes as saved and compared: sorted, each once. */
export function prefixSet(prefixes: readonly string[]): string[] {
  return [...new Set(prefixes)].sort(compareKeys)
}

/** Encodes a snapshot as its text (header line and body). */
export async function encodeSnapshot<R>(
  snapshot: SavedSnapshot<R>,
  values: PersistValues = defaultValues,
): Promise<{ readonly text: string; readonly bytes: number }> {
  const items: unknown[] = []
  for (const item of snapshot.items) {
    items.push([item.key, item.revision.toString(), ...encodeValue(item.value, values)])
  }
  const body = JSON.stringify({
    store: snapshot.store,
    revision: snapshot.revision.toString(),
    prefixes: snapshot.prefixes,
    savedAt: snapshot.savedAt,
    items,
  })
  const data = new TextEncoder().encode(body)
  const header = JSON.stringify({
    format: FORMAT,
    version: VERSION,
    bytes: data.length,
    sha256: await sha256(data),
  })
  return { text: `${header}\n${body}`, bytes: data.length + header.length + 1 }
}

/**
 * Decodes a snapshot's text and checks it against the prefixes followed now.
 *
 * @throws SnapshotPersistError saying what is wrong (`corrupt`, `truncated`, `checksum`,
 * `version`, `prefixes`), naming `source`.
 */
export async function decodeSnapshot<R>(
  source: string,
  text: string,
  prefixes: readonly string[],
  values: PersistValues = defaultValues,
): Promise<SavedSnapshot<R>> {
  const fail = (problem: PersistProblem, message: string, cause?: unknown) =>
    new SnapshotPersistError(source, problem, message, cause === undefined ? {} : { cause })
  const newline = text.indexOf('\n')
  if (newline < 0) {
    throw fail(
      text.length === 0 ? 'truncated' : 'corrupt',
      text.length === 0 ? 'it is empty' : 'no header line (not a snapshot, or cut in its header)',
    )
  }
  let header: { format?: unknown; version?: unknown; bytes?: unknown; sha256?: unknown }
  try {
    header = JSON.parse(text.slice(0, newline)) as typeof header
  } catch (cause) {
    throw fail('corrupt', 'the header line is not JSON', cause)
  }
  if (header.format !== FORMAT) {
    throw fail('corrupt', `not an ${FORMAT} file (format ${JSON.stringify(header.format)})`)
  }
  if (header.version !== VERSION) {
    throw fail(
      'version',
      `written in format version ${JSON.stringify(header.version)}, this library reads version ${VERSION}`,
    )
  }
  if (typeof header.bytes !== 'number' || typeof header.sha256 !== 'string') {
    throw fail('corrupt', 'the header has no body length or checksum')
  }
  const data = new TextEncoder().encode(text.slice(newline + 1))
  if (data.length !== header.bytes) {
    throw fail(
      data.length < header.bytes ? 'truncated' : 'corrupt',
      `the header says ${header.bytes} bytes of data, the file holds ${data.length}`,
    )
  }
  const sum = await sha256(data)
  if (sum !== header.sha256) {
    throw fail('checksum', `SHA-256 of the data is ${sum}, the header says ${header.sha256}`)
  }
  const snapshot = parseBody<R>(text.slice(newline + 1), values, (message, cause) =>
    fail('corrupt', message, cause),
  )
  const wanted = prefixSet(prefixes)
  if (JSON.stringify(snapshot.prefixes) !== JSON.stringify(wanted)) {
    throw fail(
      'prefixes',
      `saved for the prefixes ${JSON.stringify(snapshot.prefixes)}, the consumers follow ${JSON.stringify(wanted)}`,
    )
  }
  return snapshot
}

function parseBody<R>(
  body: string,
  values: PersistValues,
  fail: (message: string, cause?: unknown) => Error,
): SavedSnapshot<R> {
  let parsed: {
    store?: unknown
    revision?: unknown
    prefixes?: unknown
    savedAt?: unknown
    items?: unknown
  }
  try {
    parsed = JSON.parse(body) as typeof parsed
  } catch (cause) {
    throw fail('the data is not JSON', cause)
  }
  const { store, prefixes, savedAt, items } = parsed
  if (
    typeof store !== 'string' ||
    typeof parsed.revision !== 'string' ||
    !Array.isArray(prefixes) ||
    !prefixes.every((prefix) => typeof prefix === 'string') ||
    typeof savedAt !== 'number' ||
    !Array.isArray(items)
  ) {
    throw fail('the data lacks store, revision, prefixes, savedAt or items')
  }
  const out: KeyValue<R>[] = []
  items.forEach((item: unknown, index) => {
    if (!Array.isArray(item) || item.length !== 4 || typeof item[0] !== 'string') {
      throw fail(`item ${index} is not [key, revision, kind, data]`)
    }
    const [key, at, kind, data] = item as [string, unknown, unknown, unknown]
    try {
      out.push({
        key,
        revision: revision(BigInt(String(at))),
        value: decodeValue(kind, data, values) as R,
      })
    } catch (cause) {
      throw fail(`item ${index} (key ${JSON.stringify(key)}) does not decode`, cause)
    }
  })
  out.sort((a, b) => compareKeys(a.key, b.key))
  return {
    store,
    revision: revision(BigInt(parsed.revision)),
    prefixes,
    savedAt,
    items: out,
  }
}

/** The default value encoding: bytes as text or base64, the rest as JSON. */
const defaultValues: PersistValues = {
  encode: (value) => value,
  decode: (saved) => saved,
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

function encodeValue(value: unknown, values: PersistValues): [string, unknown] {
  if (values === defaultValues && value instanceof Uint8Array) {
    try {
      return ['s', strictUtf8.decode(value)]
    } catch {
      return ['b', toBase64(value)]
    }
  }
  return ['j', values.encode(value)]
}

function decodeValue(kind: unknown, data: unknown, values: PersistValues): unknown {
  if (kind === 's' && typeof data === 'string') return new TextEncoder().encode(data)
  if (kind === 'b' && typeof data === 'string') return fromBase64(data)
  if (kind === 'j') return values.decode(data)
  throw new TypeError(`unknown value kind ${JSON.stringify(kind)}`)
}

function toBase64(bytes: Uint8Array): string {
  let binary = ''
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  }
  return btoa(binary)
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

/** What the Web Crypto API's `subtle` offers that is used here. */
interface Digester {
  digest(algorithm: 'SHA-256', data: Uint8Array): Promise<ArrayBuffer>
}

/** The hex SHA-256 of `data`, by the Web Crypto API (Node 20 and browsers, secure contexts). */
async function sha256(data: Uint8Array): Promise<string> {
  const subtle = (globalThis as unknown as { crypto?: { subtle?: Digester } }).crypto?.subtle
  if (subtle === undefined) {
    throw new DatasyncError(
      'capability',
      'persist: the Web Crypto API (crypto.subtle) is not available here; a browser offers it only on https:// and localhost pages',
    )
  }
  const digest = new Uint8Array(await subtle.digest('SHA-256', data))
  let hex = ''
  for (const byte of digest) hex += byte.toString(16).padStart(2, '0')
  return hex
}
