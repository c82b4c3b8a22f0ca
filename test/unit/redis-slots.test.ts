import { describe, expect, it } from 'vitest'
import { SLOT_COUNT, keySlot } from '../../src/backends/redis/slots.js'

describe('keySlot', () => {
  it('gives the slots Redis documents for CLUSTER KEYSLOT', () => {
    // https://redis.io/docs/latest/commands/cluster-keyslot/
    expect(keySlot('somekey')).toBe(11058)
    expect(keySlot('foo{hash_tag}')).toBe(2515)
    expect(keySlot('{hash_tag}')).toBe(2515)
  })

  it('hashes only a non-empty hash tag, and the whole key as UTF-8 otherwise', () => {
    expect(keySlot('user:{42}:name')).toBe(keySlot('user:{42}:mail'))
    expect(keySlot('user:{42}:name')).toBe(keySlot('42'))
    // An empty tag '{}' is no tag: the whole key is hashed.
    expect(keySlot('a{}b')).not.toBe(keySlot(''))
    // ... also when a later '}' follows (CLUSTER KEYSLOT x{}y{z} on Redis 7.0 is 15453; the
    // cluster-key-slot package gives 3559, the slot of 'y{z').
    expect(keySlot('x{}y{z}')).toBe(15453)
    for (const key of ['', 'a', 'config/routes/r1', '{', '}{x}', 'ключ']) {
      const slot = keySlot(key)
      expect(slot).toBeGreaterThanOrEqual(0)
      expect(slot).toBeLessThan(SLOT_COUNT)
    }
  })
})
