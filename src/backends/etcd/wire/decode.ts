/**
 * Hand-written decoders of etcd's replies (etcdserverpb / mvccpb, proto3), for the calls that
 * dominate the store's time: Range pages, the watch stream, puts and transactions. Keys become
 * strings once; values are `Uint8Array` views into the received buffer (no copy); revisions are
 * bigints read straight from the varints (no decimal strings), one bigint shared by the keys of
 * one revision in a row. Fields the store does not read (create_revision, version, lease, the
 * header's ids and term, a transaction's responses) are skipped, as are unknown fields.
 */
import { BYTES, Reader, VARINT } from './proto.js'

/**
 * A key-value as the store reads it, in the shape of the store's `KeyValue` (so a listing hands
 * it on as it is).
 */
export interface WireKeyValue {
  /** The key's UTF-8 text. */
  readonly key: string
  /** The value: a view into the received buffer (empty when absent or keys-only). */
  readonly value: Uint8Array
  /** The revision of the key's last change (mod_revision). */
  readonly revision: bigint
}

/** A `RangeResponse`. */
export interface WireRangeResponse {
  /** The header's revision: the store's revision the range was read at. */
  readonly revision: bigint
  readonly kvs: WireKeyValue[]
  readonly more: boolean
  readonly count: number
  /** The last key's bytes (a view), where the next page starts after. */
  readonly lastKey: Buffer | undefined
}

/** An `mvccpb.Event`. */
export interface WireEvent {
  readonly type: 'put' | 'delete'
  readonly kv: WireKeyValue
  readonly prevKv: WireKeyValue | undefined
}

/** A `WatchResponse`. */
export interface WireWatchResponse {
  readonly revision: bigint
  readonly watchId: bigint
  readonly created: boolean
  readonly canceled: boolean
  readonly compactRevision: bigint
  readonly cancelReason: string
  readonly fragment: boolean
  readonly events: WireEvent[]
}

/** A `PutResponse` (without prev_kv, which the store never asks for). */
export interface WirePutResponse {
  readonly revision: bigint
}

/** A `TxnResponse`: whether the conditions held (its per-operation responses are skipped). */
export interface WireTxnResponse {
  readonly revision: bigint
  readonly succeeded: boolean
}

const EMPTY: Uint8Array = new Uint8Array(0)

/**
 * Revisions of one reply: consecutive keys written by one transaction share a revision, so the
 * last varint's bigint is reused when the next one has the same value.
 */
class Revisions {
  private lastNumber = -1
  private lastBig = 0n
  /** Where the last key read lies in the buffer. */
  keyStart = 0
  keyEnd = 0

  read(reader: Reader): bigint {
    const start = reader.pos
    const value = reader.varint()
    if (reader.pos - start > 7) {
      // Past 49 bits: exact only as a bigint.
      reader.pos = start
      return reader.int64()
    }
    if (value !== this.lastNumber) {
      this.lastNumber = value
      this.lastBig = BigInt(value)
    }
    return this.lastBig
  }
}

function header(reader: Reader, end: number): bigint {
  let revision = 0n
  while (reader.pos < end) {
    const tag = reader.varint()
    if (tag === ((3 << 3) | VARINT)) revision = reader.int64()
    else reader.skip(tag & 7)
  }
  return revision
}

/** An embedded message's end, after reading its length. */
function embedded(reader: Reader): number {
  const length = reader.length()
  return reader.pos + length
}

function keyValue(reader: Reader, end: number, revisions: Revisions): WireKeyValue {
  const buf = reader.buf
  let key = ''
  let value: Uint8Array = EMPTY
  let revision = 0n
  while (reader.pos < end) {
    const tag = reader.varint()
    switch (tag) {
      case (1 << 3) | BYTES: {
        const length = reader.length()
        revisions.keyStart = reader.pos
        revisions.keyEnd = reader.pos + length
        key = buf.toString('utf8', reader.pos, revisions.keyEnd)
        reader.pos += length
        break
      }
      case (3 << 3) | VARINT:
        revision = revisions.read(reader)
        break
      case (5 << 3) | BYTES: {
        const length = reader.length()
        value = new Uint8Array(buf.buffer, buf.byteOffset + reader.pos, length)
        reader.pos += length
        break
      }
      default:
        reader.skip(tag & 7)
    }
  }
  if (reader.pos !== end) throw reader.error('a key-value past its end')
  return { key, value, revision }
}

/** Decodes a `RangeResponse`. @throws Error on a malformed message. */
export function decodeRangeResponse(buf: Buffer): WireRangeResponse {
  const reader = new Reader(buf)
  const revisions = new Revisions()
  let revision = 0n
  const kvs: WireKeyValue[] = []
  let more = false
  let count = 0
  while (reader.pos < buf.length) {
    const tag = reader.varint()
    switch (tag) {
      case (1 << 3) | BYTES:
        revision = header(reader, embedded(reader))
        break
      case (2 << 3) | BYTES: {
        const end = embedded(reader)
        // A key-value without a key field has the empty key.
        revisions.keyStart = revisions.keyEnd = 0
        kvs.push(keyValue(reader, end, revisions))
        break
      }
      case (3 << 3) | VARINT:
        more = reader.varint() !== 0
        break
      case (4 << 3) | VARINT:
        count = reader.varint()
        break
      default:
        reader.skip(tag & 7)
    }
  }
  const lastKey = kvs.length === 0 ? undefined : buf.subarray(revisions.keyStart, revisions.keyEnd)
  return { revision, kvs, more, count, lastKey }
}

function event(reader: Reader, end: number, revisions: Revisions): WireEvent {
  let type: 'put' | 'delete' = 'put'
  let kv: WireKeyValue | undefined
  let prevKv: WireKeyValue | undefined
  while (reader.pos < end) {
    const tag = reader.varint()
    switch (tag) {
      case (1 << 3) | VARINT:
        type = reader.varint() === 1 ? 'delete' : 'put'
        break
      case (2 << 3) | BYTES:
        kv = keyValue(reader, embedded(reader), revisions)
        break
      case (3 << 3) | BYTES:
        prevKv = keyValue(reader, embedded(reader), revisions)
        break
      default:
        reader.skip(tag & 7)
    }
  }
  return { type, kv: kv ?? { key: '', value: EMPTY, revision: 0n }, prevKv }
}

/** Decodes a `WatchResponse`. @throws Error on a malformed message. */
export function decodeWatchResponse(buf: Buffer): WireWatchResponse {
  const reader = new Reader(buf)
  const revisions = new Revisions()
  let revision = 0n
  let watchId = 0n
  let created = false
  let canceled = false
  let compactRevision = 0n
  let cancelReason = ''
  let fragment = false
  const events: WireEvent[] = []
  while (reader.pos < buf.length) {
    const tag = reader.varint()
    switch (tag) {
      case (1 << 3) | BYTES:
        revision = header(reader, embedded(reader))
        break
      case (2 << 3) | VARINT:
        watchId = reader.int64()
        break
      case (3 << 3) | VARINT:
        created = reader.varint() !== 0
        break
      case (4 << 3) | VARINT:
        canceled = reader.varint() !== 0
        break
      case (5 << 3) | VARINT:
        compactRevision = reader.int64()
        break
      case (6 << 3) | BYTES: {
        const length = reader.length()
        cancelReason = buf.toString('utf8', reader.pos, reader.pos + length)
        reader.pos += length
        break
      }
      case (7 << 3) | VARINT:
        fragment = reader.varint() !== 0
        break
      case (11 << 3) | BYTES:
        events.push(event(reader, embedded(reader), revisions))
        break
      default:
        reader.skip(tag & 7)
    }
  }
  return {
    revision,
    watchId,
    created,
    canceled,
    compactRevision,
    cancelReason,
    fragment,
    events,
  }
}

/** Decodes a `PutResponse`. @throws Error on a malformed message. */
export function decodePutResponse(buf: Buffer): WirePutResponse {
  const reader = new Reader(buf)
  let revision = 0n
  while (reader.pos < buf.length) {
    const tag = reader.varint()
    if (tag === ((1 << 3) | BYTES)) revision = header(reader, embedded(reader))
    else reader.skip(tag & 7)
  }
  return { revision }
}

/** Decodes a `TxnResponse`. @throws Error on a malformed message. */
export function decodeTxnResponse(buf: Buffer): WireTxnResponse {
  const reader = new Reader(buf)
  let revision = 0n
  let succeeded = false
  while (reader.pos < buf.length) {
    const tag = reader.varint()
    if (tag === ((1 << 3) | BYTES)) revision = header(reader, embedded(reader))
    else if (tag === ((2 << 3) | VARINT)) succeeded = reader.varint() !== 0
    else reader.skip(tag & 7)
  }
  return { revision, succeeded }
}
