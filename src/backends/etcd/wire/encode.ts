/**
 * Hand-written encoders of the etcd requests the store sends on its lean path (etcdserverpb,
 * proto3): Range, Put, DeleteRange, Txn and the watch stream's requests. Each computes the
 * message's size first, then writes it into one buffer. Fields at their default (0, false,
 * empty) are left out, as protobuf does; a oneof member is always written.
 */
import { VARINT, Writer, bytesFieldSize, int64Size, varintSize } from './proto.js'

/** A `RangeRequest` (the fields the store sets). */
export interface WireRangeRequest {
  readonly key: Uint8Array
  readonly rangeEnd?: Uint8Array | undefined
  readonly limit?: number
  readonly revision?: bigint
  readonly serializable?: boolean
  readonly keysOnly?: boolean
}

/** A `PutRequest`. */
export interface WirePutRequest {
  readonly key: Uint8Array
  readonly value: Uint8Array
  readonly lease?: bigint | undefined
}

/** A `DeleteRangeRequest`. */
export interface WireDeleteRequest {
  readonly key: Uint8Array
  readonly rangeEnd?: Uint8Array | undefined
}

/** A `RequestOp` of a transaction: a put or a delete. */
export type WireRequestOp =
  | { readonly put: WirePutRequest; readonly delete?: undefined }
  | { readonly delete: WireDeleteRequest; readonly put?: undefined }

/** `Compare.CompareResult`. */
export const CompareResult = { equal: 0, greater: 1, less: 2, notEqual: 3 } as const
/** `Compare.CompareTarget`. */
export const CompareTarget = { version: 0, create: 1, mod: 2, value: 3, lease: 4 } as const

/** A `Compare`: `target` picks the member of the target union that is written. */
export type WireCompare = {
  readonly key: Uint8Array
  readonly result: (typeof CompareResult)[keyof typeof CompareResult]
} & (
  | { readonly target: 0 | 1 | 2 | 4; readonly number: bigint }
  | { readonly target: 3; readonly value: Uint8Array }
)

/** A `TxnRequest`. */
export interface WireTxnRequest {
  readonly compare: readonly WireCompare[]
  readonly success: readonly WireRequestOp[]
  readonly failure: readonly WireRequestOp[]
}

/** A `WatchCreateRequest`. */
export interface WireWatchCreate {
  readonly key: Uint8Array
  readonly rangeEnd?: Uint8Array | undefined
  readonly startRevision?: bigint
  readonly progressNotify?: boolean
  readonly prevKv?: boolean
  readonly fragment?: boolean
}

const bytesSize = (value: Uint8Array | undefined) =>
  value === undefined || value.length === 0 ? 0 : bytesFieldSize(value.length)
const int64FieldSize = (value: bigint | undefined) =>
  value === undefined || value === 0n ? 0 : 1 + int64Size(value)
const boolSize = (value: boolean | undefined) => (value === true ? 2 : 0)

function bytesField(writer: Writer, field: number, value: Uint8Array | undefined): void {
  if (value !== undefined && value.length > 0) writer.bytes(field, value)
}
function int64Field(writer: Writer, field: number, value: bigint | undefined): void {
  if (value === undefined || value === 0n) return
  writer.tag(field, VARINT)
  writer.int64(value)
}
function boolField(writer: Writer, field: number, value: boolean | undefined): void {
  if (value !== true) return
  writer.tag(field, VARINT)
  writer.varint(1)
}

function rangeSize(request: WireRangeRequest): number {
  return (
    bytesSize(request.key) +
    bytesSize(request.rangeEnd) +
    (request.limit ? 1 + varintSize(request.limit) : 0) +
    int64FieldSize(request.revision) +
    boolSize(request.serializable) +
    boolSize(request.keysOnly)
  )
}

/** Encodes a `RangeRequest`. */
export function encodeRangeRequest(request: WireRangeRequest): Buffer {
  const writer = new Writer(rangeSize(request))
  bytesField(writer, 1, request.key)
  bytesField(writer, 2, request.rangeEnd)
  if (request.limit) {
    writer.tag(3, VARINT)
    writer.varint(request.limit)
  }
  int64Field(writer, 4, request.revision)
  boolField(writer, 7, request.serializable)
  boolField(writer, 8, request.keysOnly)
  return writer.finish()
}

function putSize(request: WirePutRequest): number {
  return bytesSize(request.key) + bytesSize(request.value) + int64FieldSize(request.lease)
}

function writePut(writer: Writer, request: WirePutRequest): void {
  bytesField(writer, 1, request.key)
  bytesField(writer, 2, request.value)
  int64Field(writer, 3, request.lease)
}

/** Encodes a `PutRequest`. */
export function encodePutRequest(request: WirePutRequest): Buffer {
  const writer = new Writer(putSize(request))
  writePut(writer, request)
  return writer.finish()
}

function deleteSize(request: WireDeleteRequest): number {
  return bytesSize(request.key) + bytesSize(request.rangeEnd)
}

function writeDelete(writer: Writer, request: WireDeleteRequest): void {
  bytesField(writer, 1, request.key)
  bytesField(writer, 2, request.rangeEnd)
}

/** Encodes a `DeleteRangeRequest`. */
export function encodeDeleteRequest(request: WireDeleteRequest): Buffer {
  const writer = new Writer(deleteSize(request))
  writeDelete(writer, request)
  return writer.finish()
}

/** Size of a nested message field of `length` bytes (tag below 16). */
const nested = (length: number) => 1 + varintSize(length) + length

function opInner(op: WireRequestOp): number {
  return op.put ? putSize(op.put) : deleteSize(op.delete)
}
function opSize(op: WireRequestOp): number {
  // RequestOp { request_put = 2 | request_delete_range = 3 }: the member is always written.
  return nested(opInner(op))
}
function writeOp(writer: Writer, field: number, op: WireRequestOp): void {
  writer.message(field, opSize(op))
  if (op.put) {
    writer.message(2, putSize(op.put))
    writePut(writer, op.put)
  } else {
    writer.message(3, deleteSize(op.delete))
    writeDelete(writer, op.delete)
  }
}

function compareSize(compare: WireCompare): number {
  const union =
    compare.target === 3 ? bytesFieldSize(compare.value.length) : 1 + int64Size(compare.number)
  return (
    (compare.result === 0 ? 0 : 2) + (compare.target === 0 ? 0 : 2) + bytesSize(compare.key) + union
  )
}
/** Field of the target union per target: version 4, create_revision 5, mod_revision 6, lease 8. */
const UNION_FIELD = [4, 5, 6, 7, 8] as const

function writeCompare(writer: Writer, compare: WireCompare): void {
  if (compare.result !== 0) {
    writer.tag(1, VARINT)
    writer.varint(compare.result)
  }
  if (compare.target !== 0) {
    writer.tag(2, VARINT)
    writer.varint(compare.target)
  }
  bytesField(writer, 3, compare.key)
  if (compare.target === 3) {
    // A oneof member is written even when empty.
    writer.bytes(7, compare.value)
  } else {
    writer.tag(UNION_FIELD[compare.target], VARINT)
    writer.int64(compare.number)
  }
}

/** Encodes a `TxnRequest`. */
export function encodeTxnRequest(request: WireTxnRequest): Buffer {
  let size = 0
  for (const compare of request.compare) size += nested(compareSize(compare))
  for (const op of request.success) size += nested(opSize(op))
  for (const op of request.failure) size += nested(opSize(op))
  const writer = new Writer(size)
  for (const compare of request.compare) {
    writer.message(1, compareSize(compare))
    writeCompare(writer, compare)
  }
  for (const op of request.success) writeOp(writer, 2, op)
  for (const op of request.failure) writeOp(writer, 3, op)
  return writer.finish()
}

function createSize(create: WireWatchCreate): number {
  return (
    bytesSize(create.key) +
    bytesSize(create.rangeEnd) +
    int64FieldSize(create.startRevision) +
    boolSize(create.progressNotify) +
    boolSize(create.prevKv) +
    boolSize(create.fragment)
  )
}

/** Encodes a `WatchRequest` with a `create_request`. */
export function encodeWatchCreate(create: WireWatchCreate): Buffer {
  const inner = createSize(create)
  const writer = new Writer(nested(inner))
  writer.message(1, inner)
  bytesField(writer, 1, create.key)
  bytesField(writer, 2, create.rangeEnd)
  int64Field(writer, 3, create.startRevision)
  boolField(writer, 4, create.progressNotify)
  boolField(writer, 6, create.prevKv)
  boolField(writer, 8, create.fragment)
  return writer.finish()
}

/** Encodes a `WatchRequest` with a `cancel_request` of `watchId`. */
export function encodeWatchCancel(watchId: bigint): Buffer {
  const inner = int64FieldSize(watchId)
  const writer = new Writer(nested(inner))
  writer.message(2, inner)
  int64Field(writer, 1, watchId)
  return writer.finish()
}
