/**
 * Protobuf (proto3) wire primitives for the few etcd messages the store encodes and decodes by
 * hand (see `messages.ts`): varints read as numbers while they fit 53 bits and as bigint beyond,
 * length-delimited fields as offsets into the received buffer (no copy), unknown fields skipped.
 */

/** Wire types of protobuf. */
export const VARINT = 0
export const FIXED64 = 1
export const BYTES = 2
export const FIXED32 = 5

/** A received message being read: the buffer and the position in it. */
export class Reader {
  pos: number
  constructor(
    readonly buf: Buffer,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start
  }

  /** A varint as a number (exact up to 2^53; int64 fields use {@link Reader.int64}). */
  varint(): number {
    const buf = this.buf
    let byte = buf[this.pos++] ?? this.truncated()
    if (byte < 0x80) return byte
    let value = byte & 0x7f
    byte = buf[this.pos++] ?? this.truncated()
    value |= (byte & 0x7f) << 7
    if (byte < 0x80) return value
    byte = buf[this.pos++] ?? this.truncated()
    value |= (byte & 0x7f) << 14
    if (byte < 0x80) return value
    byte = buf[this.pos++] ?? this.truncated()
    value = (value | ((byte & 0x7f) << 21)) >>> 0
    if (byte < 0x80) return value
    let scale = 2 ** 28
    for (let i = 4; i < 10; i++) {
      byte = buf[this.pos++] ?? this.truncated()
      value += (byte & 0x7f) * scale
      if (byte < 0x80) return value
      scale *= 128
    }
    throw this.error('a varint longer than 10 bytes')
  }

  /**
   * An int64 varint as a bigint: read as a number while it has at most 7 bytes (49 bits), as a
   * bigint beyond (negative values are 10 bytes of two's complement).
   */
  int64(): bigint {
    const buf = this.buf
    const start = this.pos
    let value = 0
    let scale = 1
    for (let i = 0; i < 7; i++) {
      const byte = buf[this.pos++] ?? this.truncated()
      value += (byte & 0x7f) * scale
      if (byte < 0x80) return BigInt(value)
      scale *= 128
    }
    this.pos = start
    let big = 0n
    let shift = 0n
    for (let i = 0; i < 10; i++) {
      const byte = buf[this.pos++] ?? this.truncated()
      big |= BigInt(byte & 0x7f) << shift
      if (byte < 0x80) return BigInt.asIntN(64, big)
      shift += 7n
    }
    throw this.error('a varint longer than 10 bytes')
  }

  /** The length of a length-delimited field; the field's bytes are [pos, pos + length). */
  length(): number {
    const length = this.varint()
    if (this.pos + length > this.end) throw this.error('a field longer than its message')
    return length
  }

  /** Skips a field of `wireType` (its tag already read). */
  skip(wireType: number): void {
    if (wireType === VARINT) {
      while ((this.buf[this.pos++] ?? this.truncated()) >= 0x80) {
        // continuation bytes
      }
    } else if (wireType === BYTES) {
      const length = this.length()
      this.pos += length
    } else if (wireType === FIXED64) {
      this.pos += 8
    } else if (wireType === FIXED32) {
      this.pos += 4
    } else {
      throw this.error(`wire type ${wireType} (groups are not used by etcd)`)
    }
    if (this.pos > this.end) throw this.error('a field past the end')
  }

  /** Thrown for a read past the end of the buffer. */
  truncated(): never {
    throw this.error('a varint past the end')
  }

  error(what: string): Error {
    return new Error(`etcd: malformed protobuf reply at byte ${this.pos}: ${what}`)
  }
}

/** Bytes a varint of `value` (a non-negative safe integer) takes. */
export function varintSize(value: number): number {
  if (value < 0x80) return 1
  if (value < 0x4000) return 2
  if (value < 0x200000) return 3
  if (value < 0x10000000) return 4
  let size = 4
  let rest = Math.floor(value / 0x10000000)
  while (rest > 0) {
    size++
    rest = Math.floor(rest / 128)
  }
  return size
}

/** Bytes an int64 varint of `value` takes (negative: 10). */
export function int64Size(value: bigint): number {
  if (value < 0n) return 10
  if (value <= 0x1fffffffffffffn) return varintSize(Number(value))
  let size = 1
  for (let rest = value >> 7n; rest > 0n; rest >>= 7n) size++
  return size
}

/** Bytes of a length-delimited field of `length` bytes with a one-byte tag. */
export function bytesFieldSize(length: number): number {
  return 1 + varintSize(length) + length
}

/** A message being written into a buffer of the size computed first. */
export class Writer {
  pos = 0
  readonly buf: Buffer
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size)
  }

  /** A tag (field number and wire type) of a field below 16 (one byte) or above. */
  tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType)
  }

  varint(value: number): void {
    const buf = this.buf
    while (value >= 0x80) {
      buf[this.pos++] = (value & 0x7f) | 0x80
      value = value >= 0x100000000 ? Math.floor(value / 128) : value >>> 7
    }
    buf[this.pos++] = value
  }

  int64(value: bigint): void {
    if (value >= 0n && value <= 0x1fffffffffffffn) {
      this.varint(Number(value))
      return
    }
    let rest = BigInt.asUintN(64, value)
    while (rest >= 0x80n) {
      this.buf[this.pos++] = Number(rest & 0x7fn) | 0x80
      rest >>= 7n
    }
    this.buf[this.pos++] = Number(rest)
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, BYTES)
    this.varint(value.length)
    this.buf.set(value, this.pos)
    this.pos += value.length
  }

  /** A nested message's header: its tag and length (its bytes follow). */
  message(field: number, length: number): void {
    this.tag(field, BYTES)
    this.varint(length)
  }

  /** The written message; `size` must have been exact. */
  finish(): Buffer {
    if (this.pos !== this.buf.length) {
      throw new Error(`etcd: encoder wrote ${this.pos} bytes of ${this.buf.length} computed`)
    }
    return this.buf
  }
}
