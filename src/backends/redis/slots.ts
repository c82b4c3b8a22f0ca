import calculateSlot from 'cluster-key-slot'

/** How many hash slots a Redis Cluster has. */
export const SLOT_COUNT = 16_384

/**
 * The hash slot of a key, as Redis Cluster computes it: CRC16 of the part between the first `{`
 * and the next `}` when that part is not empty (a hash tag), else of the whole key, as UTF-8;
 * modulo 16384. Computed by `cluster-key-slot`, the package ioredis routes its own Cluster
 * commands with, so the store and the client always agree on a key's slot.
 */
export function keySlot(key: string): number {
  return calculateSlot(key)
}
