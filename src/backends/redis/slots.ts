/** How many hash slots a Redis Cluster has. */
export const SLOT_COUNT = 16_384

const CRC16_TABLE = ((): Uint16Array => {
  const table = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    table[i] = crc
  }
  return table
})()

const encoder = new TextEncoder()

/** CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with. */
function crc16(bytes: Uint8Array): number {
  let crc = 0
  for (const byte of bytes)
    crc = ((crc << 8) ^ (CRC16_TABLE[((crc >> 8) ^ byte) & 0xff] ?? 0)) & 0xffff
  return crc
}

/**
 * The hash slot of a key, as Redis Cluster computes it: only the part between the first `{` and
 * the next `}` is hashed when it is not empty (a hash tag), else the whole key (as UTF-8).
 *
 * Not `cluster-key-slot` (the package ioredis routes with): it disagrees with the server on a key
 * whose first tag is empty and that has a later `}` (`x{}y{z}`: Redis hashes the whole key, the
 * package hashes `y{z`). The integration test compares every rule with CLUSTER KEYSLOT.
 */
export function keySlot(key: string): number {
  const bytes = encoder.encode(key)
  const open = bytes.indexOf(0x7b)
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1)
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % SLOT_COUNT
  }
  return crc16(bytes) % SLOT_COUNT
}
