/**
 * The wire format shared by the HTTP server and its client (browser-safe: no Node imports).
 *
 * A value travels as a JSON object with exactly one field, chosen by the server for each value
 * and accepted in any form by both sides:
 *
 * - `{ "json": <any> }` when the bytes are UTF-8 JSON text that `JSON.stringify(JSON.parse(text))`
 *   gives back byte for byte (compact JSON: readable, and still exact);
 * - `{ "text": "<string>" }` when the bytes are valid UTF-8;
 * - `{ "base64": "<standard base64>" }` for any other bytes.
 *
 * Revisions are decimal strings (they may exceed 2^53).
 */
import { DatasyncError, type ErrorCode } from '../core/errors.js'
import type { Change, KeyValue, SnapshotCause } from '../core/events.js'
import { revision, type Revision } from '../core/revision.js'

/** A value on the wire: one of three forms. */
export type WireValue =
  { readonly json: unknown } | { readonly text: string } | { readonly base64: string }

/** A key with its value on the wire. */
export interface WireKeyValue {
  readonly key: string
  readonly value: WireValue
  readonly revision: string
}

/** A change on the wire. */
export interface WireChange {
  readonly op: 'put' | 'delete'
  readonly key: string
  readonly value?: WireValue
  readonly prev?: WireValue
  readonly revision: string
}

/** One chunk of a snapshot (`event: snapshot`); the last one has `more: false` and the id. */
export interface WireSnapshotChunk {
  readonly revision: string
  readonly cause: SnapshotCause
  readonly items: readonly WireKeyValue[]
  readonly more: boolean
}

/** A change batch (`event: changes`). */
export interface WireChanges {
  readonly revision: string
  readonly changes: readonly WireChange[]
}

/** The served store's own health (`event: status`). */
export interface WireStatus {
  readonly state: 'ready' | 'degraded'
  readonly error?: WireError
}

/** An error body: `{ "error": { code, message, key? } }`. */
export interface WireError {
  readonly code: ErrorCode | 'not-found' | 'forbidden' | 'unauthorized' | 'too-large' | 'busy'
  readonly message: string
  readonly key?: string
  /** For `capability`: what the served store cannot do. */
  readonly capability?: string
}

const encoder = new TextEncoder()
const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** The wire form of bytes: `json` where exact, else `text` where UTF-8, else `base64`. */
export function encodeValue(bytes: Uint8Array): WireValue {
  let text: string
  try {
    text = strict.decode(bytes)
  } catch {
    return { base64: toBase64(bytes) }
  }
  const first = text.charCodeAt(0)
  // Only objects, arrays, strings, numbers and literals can be JSON; a quick test avoids parsing
  // plain text.
  if (
    text.length > 0 &&
    (first === 0x7b || first === 0x5b || first === 0x22 || /^[-\dtfn]/.test(text))
  ) {
    try {
      const parsed: unknown = JSON.parse(text)
      if (JSON.stringify(parsed) === text) return { json: parsed }
    } catch {
      // not JSON: text
    }
  }
  return { text }
}

/**
 * The bytes of a wire value.
 *
 * @throws TypeError naming `what` when the value is not one of the three forms.
 */
export function decodeValue(value: unknown, what: string): Uint8Array {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const fields = Object.keys(value)
    if (fields.length === 1) {
      const record = value as Record<string, unknown>
      if ('json' in record) {
        const text = JSON.stringify(record.json)
        if (text !== undefined) return encoder.encode(text)
      } else if (typeof record.text === 'string') {
        return encoder.encode(record.text)
      } else if (typeof record.base64 === 'string') {
        const bytes = fromBase64(record.base64)
        if (bytes !== undefined) return bytes
      }
    }
  }
  throw new TypeError(
    `${what}: expected a value as {"json": ...}, {"text": "..."} or {"base64": "..."}, got ${JSON.stringify(value) ?? String(value)}`,
  )
}

export function toWireKeyValue(item: KeyValue<Uint8Array>): WireKeyValue {
  return { key: item.key, value: encodeValue(item.value), revision: item.revision.toString() }
}

export function fromWireKeyValue(item: WireKeyValue): KeyValue<Uint8Array> {
  return {
    key: item.key,
    value: decodeValue(item.value, `key '${item.key}'`),
    revision: parseRevision(item.revision, `key '${item.key}'`),
  }
}

export function toWireChange(change: Change<Uint8Array>): WireChange {
  const base = { op: change.op, key: change.key, revision: change.revision.toString() }
  const prev = change.prev === undefined ? {} : { prev: encodeValue(change.prev) }
  return change.op === 'put'
    ? { ...base, value: encodeValue(change.value), ...prev }
    : { ...base, ...prev }
}

export function fromWireChange(change: WireChange): Change<Uint8Array> {
  const what = `change of key '${change.key}'`
  const at = parseRevision(change.revision, what)
  const prev = change.prev === undefined ? {} : { prev: decodeValue(change.prev, what) }
  return change.op === 'put'
    ? { op: 'put', key: change.key, value: decodeValue(change.value, what), revision: at, ...prev }
    : { op: 'delete', key: change.key, revision: at, ...prev }
}

/** A revision from its decimal string; throws a TypeError naming `what` otherwise. */
export function parseRevision(text: unknown, what: string): Revision {
  if (typeof text !== 'string' || !/^\d{1,20}$/.test(text)) {
    throw new TypeError(
      `${what}: expected a revision as a decimal string, got ${JSON.stringify(text)}`,
    )
  }
  return revision(text)
}

/** An error body's error as a plain DatasyncError-like record. */
export function wireError(error: unknown): WireError {
  if (error instanceof DatasyncError) return { code: error.code, message: error.message }
  return { code: 'internal', message: error instanceof Error ? error.message : String(error) }
}

// Base64 without Node's Buffer (browsers and Node 20 have btoa/atob).
function toBase64(bytes: Uint8Array): string {
  let binary = ''
  const step = 0x8000
  for (let i = 0; i < bytes.length; i += step) {
    binary += String.fromCharCode(...bytes.subarray(i, i + step))
  }
  return btoa(binary)
}

function fromBase64(text: string): Uint8Array | undefined {
  let binary: string
  try {
    binary = atob(text)
  } catch {
    return undefined
  }
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}
