import { DatasyncError } from '../../core/errors.js'
import type { KeyValue } from '../../core/events.js'
import { revision, type Revision } from '../../core/revision.js'
import { byKey, compareKeys } from '../../core/order.js'
import type { PersistValues } from '../types.js'

/**
 * The snapshot text (docs/design.md §5): a header line, then the body.
 *
 * ```
 * {"format":"rx-datasync/snapshot","version":1,"bytes":1234,"sha256":"9f86…"}
 * {"store":"etcd","revision":"42","prefixes":["cfg/"],"savedAt":1764…,"keys":["cfg/a",…],"revisions":[40,…],"kinds":"s…","values":[2,…],"text":"on…"}
 * ```
 *
 * `bytes` and `sha256` are the UTF-8 length and SHA-256 of the body, so a truncated or altered
 * file is told apart from a sound one before anything is parsed. The items are columns, sorted
 * by key (flat arrays parse fastest): `keys`, `revisions` (numbers, or strings past 2^53),
 * `kinds` (one letter per item) and `values`: kind `s` is a `Uint8Array` value that is valid
 * UTF-8: its bytes are the next `values[i]` bytes of `text` (every such value, as one string:
 * loading encodes it once and each value is a view of those bytes, so they share one buffer);
 * `b` any other `Uint8Array`, in base64; `j` any other value, as JSON (or
 * `PersistOptions.values`).
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
  const items = [...snapshot.items].sort(byKey)
  const keys: string[] = []
  const revisions: (number | string)[] = []
  const kinds: string[] = []
  const data: unknown[] = []
  const text: string[] = []
  for (const item of items) {
    keys.push(item.key)
    revisions.push(item.revision <= MAX_SAFE ? Number(item.revision) : item.revision.toString())
    const [kind, value] = encodeValue(item.value, values)
    kinds.push(kind)
    if (kind === 's') {
      text.push(value as string)
      data.push((item.value as Uint8Array).length)
    } else {
      data.push(value)
    }
  }
  const body = JSON.stringify({
    store: snapshot.store,
    revision: snapshot.revision.toString(),
    prefixes: snapshot.prefixes,
    savedAt: snapshot.savedAt,
    keys,
    revisions,
    kinds: kinds.join(''),
    values: data,
    text: text.join(''),
  })
  const bytes = utf8.encode(body)
  const header = JSON.stringify({
    format: FORMAT,
    version: VERSION,
    bytes: bytes.length,
    sha256: await sha256(bytes),
  })
  return { text: `${header}\n${body}`, bytes: bytes.length + header.length + 1 }
}

/**
 * Decodes a snapshot's text and checks it against the prefixes followed now.
 *
 * @throws SnapshotPersistError saying what is wrong (`corrupt`, `truncated`, `checksum`,
 * `version`, `prefixes`), naming `source`.
 */
export async function decodeSnapshot<R>(
  source: string,
  saved: string | Uint8Array,
  prefixes: readonly string[],
  values: PersistValues = defaultValues,
): Promise<SavedSnapshot<R>> {
  const fail = (problem: PersistProblem, message: string, cause?: unknown) =>
    new SnapshotPersistError(source, problem, message, cause === undefined ? {} : { cause })
  const newline = typeof saved === 'string' ? saved.indexOf('\n') : saved.indexOf(NEWLINE)
  if (newline < 0) {
    throw fail(
      saved.length === 0 ? 'truncated' : 'corrupt',
      saved.length === 0 ? 'it is empty' : 'no header line (not a snapshot, or cut in its header)',
    )
  }
  let header: { format?: unknown; version?: unknown; bytes?: unknown; sha256?: unknown }
  try {
    header = JSON.parse(
      typeof saved === 'string'
        ? saved.slice(0, newline)
        : lenientUtf8.decode(saved.subarray(0, newline)),
    ) as typeof header
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
  // Bytes as they were read (a file) are checked as they are: no decoding and encoding again.
  const data =
    typeof saved === 'string' ? utf8.encode(saved.slice(newline + 1)) : saved.subarray(newline + 1)
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
  const body = typeof saved === 'string' ? saved.slice(newline + 1) : lenientUtf8.decode(data)
  const snapshot = parseBody<R>(body, values, (message, cause) => fail('corrupt', message, cause))
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
  let parsed: Partial<Record<'store' | 'revision' | 'prefixes' | 'savedAt', unknown>> &
    Partial<Record<'keys' | 'revisions' | 'kinds' | 'values' | 'text', unknown>>
  try {
    parsed = JSON.parse(body) as typeof parsed
  } catch (cause) {
    throw fail('the data is not JSON', cause)
  }
  const { store, prefixes, savedAt, keys, revisions, kinds, values: data } = parsed
  if (
    typeof store !== 'string' ||
    typeof parsed.revision !== 'string' ||
    !Array.isArray(prefixes) ||
    !prefixes.every((prefix) => typeof prefix === 'string') ||
    typeof savedAt !== 'number' ||
    !Array.isArray(keys) ||
    !Array.isArray(revisions) ||
    typeof kinds !== 'string' ||
    !Array.isArray(data) ||
    typeof parsed.text !== 'string' ||
    revisions.length !== keys.length ||
    kinds.length !== keys.length ||
    data.length !== keys.length
  ) {
    throw fail(
      'the data lacks store, revision, prefixes, savedAt, text, or keys, revisions, kinds and values of one length',
    )
  }
  const out: KeyValue<R>[] = new Array<KeyValue<R>>(keys.length)
  const blob = utf8.encode(parsed.text)
  let offset = 0
  let sorted = true
  for (let i = 0; i < keys.length; i++) {
    const key: unknown = keys[i]
    if (typeof key !== 'string') throw fail(`item ${i} has no key`)
    try {
      let value: unknown
      if (kinds[i] === 's') {
        const length = data[i] as unknown
        if (typeof length !== 'number' || !(length >= 0) || offset + length > blob.length) {
          throw new TypeError(`a text value of ${String(length)} bytes past the end of the text`)
        }
        value = blob.subarray(offset, (offset += length))
      } else {
        value = decodeValue(kinds[i], data[i], values)
      }
      // The shape of every store's items (key, value, revision): the consumers' loops over
      // them stay monomorphic.
      out[i] = { key, value: value as R, revision: revisionOf(revisions[i]) }
    } catch (cause) {
      throw fail(`item ${i} (key ${JSON.stringify(key)}) does not decode`, cause)
    }
    if (i > 0 && sorted && compareKeys((out[i - 1] as KeyValue<R>).key, key) > 0) sorted = false
  }
  if (offset !== blob.length)
    throw fail(`the text holds ${blob.length - offset} bytes no value uses`)
  if (!sorted) out.sort(byKey)
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
/** Decodes what the checksum vouched for (the header line is checked as JSON). */
const lenientUtf8 = new TextDecoder('utf-8')
const NEWLINE = 0x0a

/** A saved revision: a safe integer, or a decimal string past 2^53. */
function revisionOf(saved: unknown): Revision {
  if (typeof saved === 'number' && Number.isSafeInteger(saved) && saved >= 0) {
    return BigInt(saved) as Revision
  }
  return revision(BigInt(saved as string))
}
const utf8 = new TextEncoder()
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

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
