/**
 * Copies a reply buffer: ioredis hands out views into its socket chunks, which would stay alive.
 */
export function copyBytes(value: Uint8Array): Uint8Array {
  return new Uint8Array(value)
}

/**
 * Copies the values of one reply into one new buffer, as views over it (ioredis hands out views
 * into its socket chunks, which hold other replies too and would stay alive): one allocation
 * per reply instead of one per value. `null` (a missing key) maps to undefined.
 */
export function copyAll(buffers: readonly (Buffer | null)[]): (Uint8Array | undefined)[] {
  let total = 0
  for (const buffer of buffers) if (buffer) total += buffer.length
  const slab = new Uint8Array(total)
  const out: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(buffers.length)
  let at = 0
  for (let i = 0; i < buffers.length; i++) {
    const buffer = buffers[i]
    if (!buffer) continue
    slab.set(buffer, at)
    out[i] = slab.subarray(at, at + buffer.length)
    at += buffer.length
  }
  return out
}

/** A Buffer view of bytes, without copying, for ioredis arguments. */
export function asBuffer(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value)
    ? value
    : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}
