/**
 * The Redis backend's pure pieces, without a server: option checks, keyspace flag arithmetic,
 * prefix normalization, the write-message format, error mapping and the revision clock.
 */
import { describe, expect, it } from 'vitest'
import { ConfigError, UnavailableError, revision } from '../../src/index.js'
import { createRedisStore } from '../../src/backends/redis/index.js'
import { toDatasyncError } from '../../src/backends/redis/errors.js'
import { escapeGlob, missingFlags, normalizePrefixes } from '../../src/backends/redis/keyspace.js'
import { parseAddress, resolveOptions } from '../../src/backends/redis/options.js'
import { RevisionClock, digest } from '../../src/backends/redis/revisions.js'
import { decodeWriteMessage, messageHead } from '../../src/backends/redis/messages.js'

describe('options', () => {
  it('wants exactly one of node, sentinel or cluster', () => {
    expect(() => createRedisStore({})).toThrow(/exactly one of node, sentinel or cluster, got none/)
    expect(() => createRedisStore({ node: 'a:1', cluster: { nodes: ['b:2'] } })).toThrow(
      /got node and cluster/,
    )
  })

  it('checks addresses, durations and the database', () => {
    expect(parseAddress('127.0.0.1:6379', 'x')).toEqual({ host: '127.0.0.1', port: 6379 })
    expect(parseAddress('[::1]:6380', 'x')).toEqual({ host: '::1', port: 6380 })
    expect(() => parseAddress('localhost', 'redis node')).toThrow(
      /redis node: expected an address 'host:port', got "localhost"/,
    )
    expect(() => createRedisStore({ node: 'a:1', commandTimeout: 'soon' as never })).toThrow(
      /commandTimeout/,
    )
    expect(() => createRedisStore({ cluster: { nodes: ['a:1'] }, db: 1 })).toThrow(
      /only database 0/,
    )
    expect(() => createRedisStore({ sentinel: { sentinels: [], masterName: 'm' } })).toThrow(
      /at least one sentinel/,
    )
    const settings = resolveOptions({ node: 'a:1', reconnectDelay: '250ms' })
    expect(settings.reconnectDelayMs).toBe(250)
    expect(settings.commandTimeoutMs).toBe(5_000)
  })

  it('creates a store without connecting anywhere', async () => {
    // Nothing listens on port 1: a store that connected eagerly would fail here.
    const store = createRedisStore({ node: '127.0.0.1:1' })
    expect(store.capabilities).toMatchObject({ nativePrev: false, atomicPrefixDelete: false })
    await store.close()
  })
})

describe('keyspace notifications', () => {
  it('names the classes a server lacks, reading A as all of them', () => {
    expect(missingFlags('')).toEqual(['K', 'g', '$', 'x', 'e'])
    expect(missingFlags('AKE')).toEqual([])
    expect(missingFlags('g$xeK')).toEqual([])
    expect(missingFlags('Kgx')).toEqual(['$', 'e'])
    expect(missingFlags('EA')).toEqual(['K'])
  })

  it('escapes glob characters and keeps each key under one prefix', () => {
    expect(escapeGlob('a*b?[c]\\d')).toBe('a\\*b\\?\\[c\\]\\\\d')
    expect(normalizePrefixes(['a/b/', 'a/', 'c/', 'a/', 'c/d'])).toEqual(['a/', 'c/'])
    expect(normalizePrefixes(['', 'x/'])).toEqual([''])
  })
})

describe('write messages', () => {
  it('round-trips the head; anything else on the channel is not a write message', () => {
    const writer = Buffer.from('0123456789abcdef', 'hex')
    const head = messageHead(1234, writer, 42n)
    const key = Buffer.from('κλειδί/1')
    const value = Buffer.from([0, 1, 255])
    const body = Buffer.concat([
      head,
      Buffer.from('p'),
      u32(key.length),
      key,
      u32(value.length),
      value,
      Buffer.from('d'),
      u32(1),
      Buffer.from('z'),
    ])
    expect(decodeWriteMessage(body)).toEqual({
      slot: 1234,
      writer: '0123456789abcdef',
      sequence: 42n,
      writes: [
        { key: 'κλειδί/1', value: new Uint8Array([0, 1, 255]) },
        { key: 'z', value: undefined },
      ],
    })
    expect(decodeWriteMessage(head)).toMatchObject({ writes: [] })
    expect(decodeWriteMessage(Buffer.from('hello'))).toBeUndefined()
    expect(decodeWriteMessage(Buffer.concat([head, Buffer.from('p'), u32(99)]))).toBeUndefined()
  })
})

describe('errors', () => {
  it('maps client errors to retryable, fatal or invalid categories', () => {
    const map = (error: unknown, what: string) => {
      const mapped = toDatasyncError(error, what)
      // No Redis error closes the store: each stays with the operation that met it.
      expect(mapped.scope).toBe('operation')
      return mapped.error
    }
    expect(map(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), 'get')).toBeInstanceOf(
      UnavailableError,
    )
    expect(map(new Error('Command timed out'), 'get').retryable).toBe(true)
    expect(map(new Error('READONLY You cannot write'), 'put').code).toBe('unavailable')
    expect(map(new Error('WRONGPASS invalid password'), 'get').code).toBe('auth')
    expect(map(new Error('CROSSSLOT Keys'), 'txn').code).toBe('invalid-argument')
    expect(
      map(Object.assign(new Error('x'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'get'),
    ).toBeInstanceOf(ConfigError)
    expect(map(new Error('something odd'), 'get').code).toBe('internal')
  })

  it("maps the server's bulk-length refusal to a non-retryable invalid-argument", () => {
    // What ioredis hands over when Redis refuses a value over its proto-max-bulk-len and its
    // reply is read before the connection drops (when the drop wins, the command fails as
    // unavailable: the store's maxValueBytes check is what makes the refusal certain).
    const refusal = Object.assign(new Error('ERR Protocol error: invalid bulk length'), {
      name: 'ReplyError',
    })
    const { error, scope } = toDatasyncError(refusal, "put 'size/server'")
    expect(scope).toBe('operation')
    expect(error.code).toBe('invalid-argument')
    expect(error.retryable).toBe(false)
    expect(error.message).toMatch(/proto-max-bulk-len; set the store's maxValueBytes/)
  })
})

describe('revisions', () => {
  it('keeps a revision while the value holds, moves it on a change, forgets the oldest', () => {
    const clock = new RevisionClock(2)
    const a = clock.observe('a', Buffer.from('1'))
    expect(clock.observe('a', Buffer.from('1'))).toBe(a)
    const a2 = clock.observe('a', Buffer.from('2'))
    expect(a2 > a).toBe(true)
    expect(clock.digestAt('a', a2)).toBe(digest(Buffer.from('2')))
    expect(clock.digestAt('a', a)).toBeUndefined()
    clock.observe('b', Buffer.from('x'))
    clock.observe('c', Buffer.from('y'))
    // 'a' was the least recently seen: forgotten.
    expect(clock.digestAt('a', a2)).toBeUndefined()
    clock.record('b', undefined, clock.tick())
    expect(clock.now()).toBe(revision(5n))
  })
})

function u32(n: number): Buffer {
  const buffer = Buffer.alloc(4)
  buffer.writeUInt32BE(n)
  return buffer
}
