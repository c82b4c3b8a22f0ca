import { DatasyncError } from '../../core/errors.js'
import type { KeyValue } from '../../core/events.js'
import { revision, type Revision } from '../../core/revision.js'
import { byKey, compareKeys } from '../../core/order.js'
import type { PersistValues } from '../types.js'
import { hex, sha256 } from './digest.js'
import { fromBase64, toBase64 } from './base64.js'

/**
 * The snapshot file (docs/design.md §5), binary and little-endian, made to load fast: one read,
 * one hash, no text parsing of the items.
 *
 * ```
 * offset  bytes  what
 * 0       8      magic: 0x89 'RXDSNAP'
 * 8       4      format version (2)
 * 12      4      N: the data's length in bytes
 * 16      32     SHA-256 of the data
 * 48      N      the data:
 *   u32 M, then M bytes of JSON: store, identity (when the store has one), revision (decimal),
 *     prefixes, savedAt, count, values ('bytes' or 'json')
 *   count × u32   each key's length in UTF-16 code units (the keys are sorted)
 *   count × u64   each item's revision
 *   u32 K, then K bytes: every key's UTF-8, one after the other
 *   values 'bytes' (every value a Uint8Array): count × u32 lengths, then the bytes
 *   values 'json': the UTF-8 of {"kinds":"bj…","values":[…]}: kind b a Uint8Array in base64,
 *     j any other value as `PersistOptions.values` encodes it (JSON by default)
 * ```
 *
 * A truncated or altered file is told apart from a sound one by the length and the checksum
 * before anything else is read. Version 1 (a JSON text with a header line, before 0.1.0) is
 * reported as another version.
 */
export const FORMAT = 'rx-datasync/snapshot'
/** The format version this library writes and reads. */
export const VERSION = 2

const MAGIC = [0x89, 0x52, 0x58, 0x44, 0x53, 0x4e, 0x41, 0x50] // \x89 RXDSNAP
const HEADER = 48

/**
 * What went wrong with a saved snapshot:
 * - `unreadable`: the persistence could not read it (a file's permissions, a disk error).
 * - `corrupt`: not a snapshot, or its header or data does not parse.
 * - `truncated`: shorter than its header says.
 * - `checksum`: its SHA-256 does not match the header's.
 * - `version`: written by another format version.
 * - `prefixes`: saved for another set of prefixes than the consumers follow now.
 * - `identity`: saved from another store (another etcd cluster, NATS bucket, PostgreSQL server
 *   or table) than the one the orchestrator runs on now.
 * - `write`: a save failed (the previous snapshot stays).
 */
export type PersistProblem =
  | 'unreadable'
  | 'corrupt'
  | 'truncated'
  | 'checksum'
  | 'version'
  | 'prefixes'
  | 'identity'
  | 'write'

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
  /** The store's identity when it was saved (`KvStore.identity`), if it has one. */
  readonly identity?: string | undefined
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

/** Encodes a snapshot as the bytes of a file. */
export async function encodeSnapshot<R>(
  snapshot: SavedSnapshot<R>,
  values: PersistValues = defaultValues,
): Promise<Uint8Array> {
  const items = [...snapshot.items].sort(byKey)
  const count = items.length
  const bytesOnly = values === defaultValues && items.every((i) => i.value instanceof Uint8Array)
  const meta = utf8.encode(
    JSON.stringify({
      store: snapshot.store,
      ...(snapshot.identity === undefined ? {} : { identity: snapshot.identity }),
      revision: snapshot.revision.toString(),
      prefixes: snapshot.prefixes,
      savedAt: snapshot.savedAt,
      count,
      values: bytesOnly ? 'bytes' : 'json',
    }),
  )
  const keys = utf8.encode(items.map((item) => item.key).join(''))
  let tail: Uint8Array
  if (bytesOnly) {
    let total = 0
    for (const item of items) total += (item.value as Uint8Array).length
    tail = new Uint8Array(4 * count + total)
    const lengths = new DataView(tail.buffer)
    let offset = 4 * count
    items.forEach((item, i) => {
      const value = item.value as Uint8Array
      lengths.setUint32(4 * i, value.length, true)
      tail.set(value, offset)
      offset += value.length
    })
  } else {
    let kinds = ''
    const data = items.map((item) => {
      if (values === defaultValues && item.value instanceof Uint8Array) {
        kinds += 'b'
        return toBase64(item.value)
      }
      kinds += 'j'
      return values.encode(item.value)
    })
    tail = utf8.encode(JSON.stringify({ kinds, values: data }))
  }
  const size = 4 + meta.length + 12 * count + 4 + keys.length + tail.length
  const out = new Uint8Array(HEADER + size)
  const view = new DataView(out.buffer)
  out.set(MAGIC, 0)
  view.setUint32(8, VERSION, true)
  view.setUint32(12, size, true)
  let at = HEADER
  view.setUint32(at, meta.length, true)
  out.set(meta, (at += 4))
  at += meta.length
  for (const item of items) {
    view.setUint32(at, item.key.length, true)
    at += 4
  }
  for (const item of items) {
    view.setBigUint64(at, item.revision, true)
    at += 8
  }
  view.setUint32(at, keys.length, true)
  out.set(keys, (at += 4))
  out.set(tail, at + keys.length)
  out.set(await sha256(out.subarray(HEADER)), 16)
  return out
}

/**
 * Decodes a snapshot's bytes and checks them against the prefixes followed now.
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
  const file = typeof saved === 'string' ? utf8.encode(saved) : saved
  if (file.length === 0) throw fail('truncated', 'it is empty')
  if (file[0] === 0x7b) throw textFile(file, fail)
  const magic = MAGIC.every((byte, i) => i >= file.length || file[i] === byte)
  if (!magic) throw fail('corrupt', `not an ${FORMAT} file (its first bytes are not the magic)`)
  if (file.length < HEADER) {
    throw fail('truncated', `${file.length} bytes, shorter than the ${HEADER}-byte header`)
  }
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength)
  const version = view.getUint32(8, true)
  if (version !== VERSION) {
    throw fail(
      'version',
      `written in format version ${version}, this library reads version ${VERSION}`,
    )
  }
  const size = view.getUint32(12, true)
  const data = file.subarray(HEADER)
  if (data.length !== size) {
    throw fail(
      data.length < size ? 'truncated' : 'corrupt',
      `the header says ${size} bytes of data, the file holds ${data.length}`,
    )
  }
  const sum = await sha256(data)
  const expected = file.subarray(16, HEADER)
  if (!sum.every((byte, i) => byte === expected[i])) {
    throw fail('checksum', `SHA-256 of the data is ${hex(sum)}, the header says ${hex(expected)}`)
  }
  let snapshot: SavedSnapshot<R>
  try {
    snapshot = parseData<R>(data, values)
  } catch (cause) {
    throw fail('corrupt', `the data does not decode: ${(cause as Error).message}`, cause)
  }
  const wanted = prefixSet(prefixes)
  if (JSON.stringify(snapshot.prefixes) !== JSON.stringify(wanted)) {
    throw fail(
      'prefixes',
      `saved for the prefixes ${JSON.stringify(snapshot.prefixes)}, the consumers follow ${JSON.stringify(wanted)}`,
    )
  }
  return snapshot
}

/** A file that starts as JSON: the text format of version 1, or not a snapshot. */
function textFile(
  file: Uint8Array,
  fail: (problem: PersistProblem, message: string) => SnapshotPersistError,
): SnapshotPersistError {
  const newline = file.indexOf(0x0a)
  try {
    const header = JSON.parse(lenientUtf8.decode(file.subarray(0, newline))) as {
      format?: unknown
      version?: unknown
    }
    if (header.format === FORMAT) {
      return fail(
        'version',
        `written in format version ${JSON.stringify(header.version)}, this library reads version ${VERSION}`,
      )
    }
  } catch {
    // Not JSON either: said below.
  }
  return fail('corrupt', `not an ${FORMAT} file (it starts as text)`)
}

function parseData<R>(data: Uint8Array, values: PersistValues): SavedSnapshot<R> {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const metaLength = view.getUint32(0, true)
  const meta = JSON.parse(lenientUtf8.decode(data.subarray(4, 4 + metaLength))) as Partial<
    Record<'store' | 'identity' | 'revision' | 'prefixes' | 'savedAt' | 'count' | 'values', unknown>
  >
  const { store, identity, prefixes, savedAt, count } = meta
  if (
    typeof store !== 'string' ||
    (identity !== undefined && typeof identity !== 'string') ||
    typeof meta.revision !== 'string' ||
    !Array.isArray(prefixes) ||
    !prefixes.every((prefix) => typeof prefix === 'string') ||
    typeof savedAt !== 'number' ||
    typeof count !== 'number' ||
    !Number.isSafeInteger(count) ||
    (meta.values !== 'bytes' && meta.values !== 'json')
  ) {
    throw new TypeError('its description lacks store, revision, prefixes, savedAt, count or values')
  }
  const lengthsAt = 4 + metaLength
  const revisionsAt = lengthsAt + 4 * count
  const keysAt = revisionsAt + 8 * count + 4
  const keyBytes = view.getUint32(keysAt - 4, true)
  const joined = lenientUtf8.decode(data.subarray(keysAt, keysAt + keyBytes))
  const tailAt = keysAt + keyBytes
  const out = new Array<KeyValue<R>>(count)
  const read = meta.values === 'bytes' ? bytesReader(data, view, tailAt, count) : undefined
  const json = read === undefined ? jsonValues(data.subarray(tailAt), count, values) : undefined
  let from = 0
  let previous = ''
  // Keys written by one transaction share a revision: one bigint for a run of them (as the etcd
  // store's reader does), not one per key.
  let low = -1
  let high = -1
  let shared = 0n as Revision
  for (let i = 0; i < count; i++) {
    const key = joined.slice(from, (from += view.getUint32(lengthsAt + 4 * i, true)))
    if (i > 0 && !(previous < key)) throw new TypeError(`the keys are not sorted at item ${i}`)
    previous = key
    const at = revisionsAt + 8 * i
    if (view.getUint32(at, true) !== low || view.getUint32(at + 4, true) !== high) {
      low = view.getUint32(at, true)
      high = view.getUint32(at + 4, true)
      shared = view.getBigUint64(at, true) as Revision
    }
    // The shape of every store's items (key, value, revision): the consumers' loops over them
    // stay monomorphic.
    out[i] = {
      key,
      value: (read === undefined ? (json as unknown[])[i] : read(i)) as R,
      revision: shared,
    }
  }
  if (from !== joined.length) throw new TypeError('the key lengths do not add up to the keys')
  return {
    store,
    ...(identity === undefined ? {} : { identity }),
    revision: revision(meta.revision),
    prefixes,
    savedAt,
    items: out,
  }
}

/** Values of kind 'bytes': each a view of the file's bytes (no copy). */
function bytesReader(
  data: Uint8Array,
  view: DataView,
  at: number,
  count: number,
): (i: number) => Uint8Array {
  let offset = data.byteOffset + at + 4 * count
  const end = data.byteOffset + data.length
  const { buffer } = data
  return (i) => {
    const length = view.getUint32(at + 4 * i, true)
    if (offset + length > end) throw new TypeError(`value ${i} runs past the end of the data`)
    const value = new Uint8Array(buffer, offset, length)
    offset += length
    if (i === count - 1 && offset !== end) {
      throw new TypeError(`the data holds ${end - offset} bytes no value uses`)
    }
    return value
  }
}

function jsonValues(tail: Uint8Array, count: number, values: PersistValues): unknown[] {
  const parsed = JSON.parse(lenientUtf8.decode(tail)) as { kinds?: unknown; values?: unknown }
  const { kinds, values: data } = parsed
  if (typeof kinds !== 'string' || !Array.isArray(data) || data.length !== count) {
    throw new TypeError(`the values are not ${count} values with their kinds`)
  }
  return data.map((saved: unknown, i) => {
    if (kinds[i] === 'b' && typeof saved === 'string') return fromBase64(saved)
    if (kinds[i] === 'j') return values.decode(saved)
    throw new TypeError(`value ${i} is of an unknown kind ${JSON.stringify(kinds[i])}`)
  })
}

/** The default value encoding: bytes as they are, the rest as JSON. */
const defaultValues: PersistValues = {
  encode: (value) => value,
  decode: (saved) => saved,
}

/** Decodes what the checksum vouched for. */
const lenientUtf8 = new TextDecoder('utf-8')
const utf8 = new TextEncoder()
