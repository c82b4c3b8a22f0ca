import type { KeyValue } from '../../core/events.js'
import type { Revision } from '../../core/revision.js'
import type { WireKeyValue } from './wire/decode.js'

/** A key range of etcd: `[start, end)`; `end` = `[0]` means "every key from `start` on". */
export interface KeyRange {
  readonly start: Buffer
  readonly end: Buffer
}

const ALL = Buffer.from([0])

/** A key as etcd stores it: its UTF-8 bytes. */
export function keyBytes(key: string): Buffer {
  return Buffer.from(key, 'utf8')
}

/** A value from the client (a Buffer view) as a plain `Uint8Array` over the same memory. */
export function valueOf(raw: Buffer | undefined): Uint8Array {
  if (raw === undefined) return new Uint8Array(0)
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)
}

/**
 * A decoded key-value as the store's: the decoder already made it in that shape (its value a view
 * into the reply), so it is handed on as it is, without another object per key.
 */
export function toKeyValue(kv: WireKeyValue): KeyValue<Uint8Array> {
  return kv as KeyValue<Uint8Array> & { readonly revision: Revision }
}

/** A value for the client: the same memory seen as a Buffer (no copy). */
export function toBuffer(value: Uint8Array): Buffer {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}

/**
 * The end of the range of keys that start with `prefix`, as etcd's clients compute it: the
 * prefix with its last byte below 0xff incremented (and the bytes after it dropped); every key
 * (`[0]`) when there is no such byte (the empty prefix included).
 */
export function prefixEnd(prefix: Buffer): Buffer {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const byte = prefix[i] ?? 0xff
    if (byte < 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1))
      end[i] = byte + 1
      return end
    }
  }
  return ALL
}

/** The range of every key under `prefix` (the empty prefix: every key). */
export function prefixRange(prefix: string): KeyRange {
  const start = keyBytes(prefix)
  return { start: start.length === 0 ? ALL : start, end: prefixEnd(start) }
}

/**
 * The prefixes that matter, sorted and without overlap: a prefix under another one adds
 * nothing (`['a/', 'a/b/']` is `['a/']`), and a duplicate is dropped.
 */
export function normalizePrefixes(prefixes: readonly string[]): string[] {
  const sorted = [...new Set(prefixes)].sort((a, b) => Buffer.compare(keyBytes(a), keyBytes(b)))
  const kept: string[] = []
  for (const prefix of sorted) {
    const last = kept.at(-1)
    if (last === undefined || !prefix.startsWith(last)) kept.push(prefix)
  }
  return kept
}

/**
 * The smallest range holding every key under the (normalized, sorted) prefixes: a watch over it
 * sees every change of those keys, each revision in one piece, and the client keeps the ones
 * under a prefix.
 */
export function hullOf(prefixes: readonly string[]): KeyRange {
  const ranges = prefixes.map(prefixRange)
  const first = ranges[0]
  if (first === undefined) throw new TypeError('hullOf: expected at least one prefix')
  let end = first.end
  for (const range of ranges) {
    if (isAll(range.end) || isAll(end)) end = ALL
    else if (Buffer.compare(range.end, end) > 0) end = range.end
  }
  return { start: first.start, end }
}

function isAll(end: Buffer): boolean {
  return end.length === 1 && end[0] === 0
}

/** The key right after `key` in etcd's order: where the next page of a listing starts. */
export function keyAfter(key: Buffer): Buffer {
  return Buffer.concat([key, ALL])
}
