import { describe, expect, it } from 'vitest'
import { valuesEqual } from '../../src/core/equal.js'
import { describe as describeError } from '../../src/core/errors.js'
import { matchesAny } from '../../src/core/snapshot.js'
import {
  AckTimeoutError,
  AuthError,
  CapabilityError,
  ClosedError,
  CodecError,
  ConfigError,
  ConsumerError,
  DatasyncError,
  UnavailableError,
  ZERO_REVISION,
  applyChanges,
  compareRevisions,
  createSnapshot,
  diffSnapshots,
  isRetryable,
  maxRevision,
  revision,
  toMillis,
  type Change,
  type Duration,
  type ErrorCode,
  type KeyValue,
  type Revision,
  type Snapshot,
} from '../../src/index.js'

const r = (n: number): Revision => revision(n)
const kv = <V>(key: string, value: V, rev: number): KeyValue<V> => ({
  key,
  value,
  revision: r(rev),
})

describe('toMillis', () => {
  it('takes a number as milliseconds', () => {
    expect(toMillis(0)).toBe(0)
    expect(toMillis(250)).toBe(250)
    expect(toMillis(1.5)).toBe(1.5)
  })

  it('reads each unit', () => {
    expect(toMillis('250ms')).toBe(250)
    expect(toMillis('10s')).toBe(10_000)
    expect(toMillis('5m')).toBe(300_000)
    expect(toMillis('1h')).toBe(3_600_000)
    expect(toMillis('0s')).toBe(0)
  })

  it('reads decimal amounts', () => {
    expect(toMillis('1.5s')).toBe(1_500)
    expect(toMillis('0.25m')).toBe(15_000)
    expect(toMillis('2.5ms')).toBe(2.5)
  })

  it('refuses negative, infinite and NaN numbers, naming the field', () => {
    for (const bad of [-1, -0.5, Infinity, -Infinity, NaN]) {
      expect(() => toMillis(bad, 'ackTimeout')).toThrow(TypeError)
      expect(() => toMillis(bad, 'ackTimeout')).toThrow(/^ackTimeout: .*non-negative/)
    }
  })

  it('refuses malformed strings, naming the field and quoting the value', () => {
    // ('1.s' and '.5s' are Go durations, read as Go's time.ParseDuration reads them.)
    const bad = ['10', '10 s', 's', '-1s', '1d', '10sec', '.s', '1m30', ' 1s', '1s ', '1e3ms', '']
    for (const value of bad) {
      const call = () => toMillis(value as Duration, 'retryDelay')
      expect(call).toThrow(TypeError)
      expect(call).toThrow(`retryDelay: expected a duration such as`)
      // The value is quoted (either quote style) so that '' and ' 1s' are visible.
      expect(call).toThrow(new RegExp(`got (['"])${value.replace('.', '\\.')}\\1$`))
    }
  })

  it('names "duration" when no field is given', () => {
    expect(() => toMillis(-1)).toThrow(/^duration: /)
    expect(() => toMillis('x' as Duration)).toThrow(/^duration: /)
  })
})

describe('revision', () => {
  it('makes a bigint from a bigint, a decimal string or a safe integer', () => {
    expect(revision(5n)).toBe(5n)
    expect(revision('7')).toBe(7n)
    expect(revision(42)).toBe(42n)
    expect(typeof revision(1)).toBe('bigint')
  })

  it('keeps int64 values a number cannot hold', () => {
    const big = revision('9223372036854775807')
    expect(big).toBe(9_223_372_036_854_775_807n)
    expect(big > revision(Number.MAX_SAFE_INTEGER)).toBe(true)
  })

  it('accepts zero and the largest safe integer', () => {
    expect(revision(0)).toBe(0n)
    expect(revision(Number.MAX_SAFE_INTEGER)).toBe(BigInt(Number.MAX_SAFE_INTEGER))
  })

  it('refuses negative values of every form', () => {
    for (const value of [-1n, '-1', -1]) {
      expect(() => revision(value)).toThrow(TypeError)
      expect(() => revision(value)).toThrow(/non-negative value, got -1/)
    }
  })

  it('refuses numbers that are not safe integers', () => {
    for (const value of [1.5, Number.MAX_SAFE_INTEGER + 1, NaN, Infinity, -Infinity]) {
      expect(() => revision(value)).toThrow(TypeError)
      expect(() => revision(value)).toThrow(/safe integer/)
    }
  })

  it('refuses strings that are not integers', () => {
    for (const value of ['abc', '1.5', '1e3']) expect(() => revision(value)).toThrow()
  })

  // BUG (src/core/revision.ts:20): BigInt('') is 0n, so an empty string (a missing header, say)
  // silently becomes ZERO_REVISION instead of being refused as not a decimal string.
  it('refuses the empty string, which is not a decimal string', () => {
    expect(() => revision('')).toThrow(TypeError)
  })

  it('has ZERO_REVISION below every other revision', () => {
    expect(ZERO_REVISION).toBe(0n)
    expect(compareRevisions(ZERO_REVISION, r(1))).toBe(-1)
  })

  it('compares revisions', () => {
    expect(compareRevisions(r(1), r(2))).toBe(-1)
    expect(compareRevisions(r(2), r(2))).toBe(0)
    expect(compareRevisions(r(3), r(2))).toBe(1)
    expect(compareRevisions(revision(5n), revision('7'))).toBe(-1)
    // Beyond 2^53, where numbers would compare equal.
    const a = revision('9007199254740993')
    const b = revision('9007199254740992')
    expect(compareRevisions(a, b)).toBe(1)
  })

  it('sorts with compareRevisions', () => {
    const sorted = [r(3), r(1), revision('10'), r(2)].sort(compareRevisions)
    expect(sorted).toEqual([1n, 2n, 3n, 10n])
  })

  it('takes the later of two revisions', () => {
    expect(maxRevision(r(1), r(2))).toBe(2n)
    expect(maxRevision(r(9), r(2))).toBe(9n)
    expect(maxRevision(r(4), r(4))).toBe(4n)
    expect(maxRevision(revision('10'), r(9))).toBe(10n)
  })
})

describe('errors', () => {
  it('gives each class its code, name and retryability', () => {
    const cases: [DatasyncError, ErrorCode, string, boolean][] = [
      [new UnavailableError('etcd', 'down'), 'unavailable', 'UnavailableError', true],
      [new AckTimeoutError('routes', 'resync', 100), 'ack-timeout', 'AckTimeoutError', false],
      [
        new ConsumerError('routes', 'change', new Error('x')),
        'consumer-failed',
        'ConsumerError',
        false,
      ],
      [new CodecError('a/b', 'json', new Error('x')), 'codec', 'CodecError', false],
      [new CapabilityError('filedb', 'write'), 'capability', 'CapabilityError', false],
      [new ConfigError('etcd.yaml:3', 'endpoints', 'bad'), 'config', 'ConfigError', false],
      [new AuthError('redis', 'WRONGPASS'), 'auth', 'AuthError', false],
      [new ClosedError('the memory store'), 'closed', 'ClosedError', false],
    ]
    for (const [error, code, name, retryable] of cases) {
      expect(error).toBeInstanceOf(DatasyncError)
      expect(error).toBeInstanceOf(Error)
      expect(error.code).toBe(code)
      expect(error.name).toBe(name)
      expect(error.retryable).toBe(retryable)
      expect(isRetryable(error)).toBe(retryable)
    }
  })

  it('makes unavailable, timeout and conflict retryable by default, and nothing else', () => {
    const codes: ErrorCode[] = [
      'unavailable',
      'timeout',
      'compacted',
      'ack-timeout',
      'consumer-failed',
      'codec',
      'capability',
      'config',
      'auth',
      'conflict',
      'closed',
      'invalid-argument',
      'internal',
    ]
    const retryable = codes.filter((code) => isRetryable(new DatasyncError(code, 'm')))
    expect(retryable).toEqual(['unavailable', 'timeout', 'conflict'])
  })

  it('lets options override the default retryability', () => {
    expect(isRetryable(new DatasyncError('internal', 'm', { retryable: true }))).toBe(true)
    expect(isRetryable(new DatasyncError('timeout', 'm', { retryable: false }))).toBe(false)
    expect(isRetryable(new UnavailableError('etcd', 'no leader', { retryable: false }))).toBe(false)
    expect(isRetryable(new AuthError('etcd', 'bad token', { retryable: true }))).toBe(true)
  })

  it('says nothing that is not a DatasyncError is retryable', () => {
    for (const value of [new Error('x'), new TypeError('x'), 'unavailable', undefined, null]) {
      expect(isRetryable(value)).toBe(false)
    }
    expect(isRetryable({ code: 'unavailable', retryable: true })).toBe(false)
  })

  it('keeps the cause, and has none when none is given', () => {
    const cause = new Error('ECONNREFUSED')
    const error = new UnavailableError('etcd', 'down', { cause })
    expect(error.cause).toBe(cause)
    expect('cause' in new UnavailableError('etcd', 'down')).toBe(false)
    expect(new DatasyncError('internal', 'm', { cause: 'text' }).cause).toBe('text')
  })

  it('has the base class named DatasyncError with the message as given', () => {
    const error = new DatasyncError('internal', 'something broke')
    expect(error.name).toBe('DatasyncError')
    expect(error.message).toBe('something broke')
  })

  it('names the backend in UnavailableError and AuthError', () => {
    const unavailable = new UnavailableError('etcd', 'connection refused at 127.0.0.1:2379')
    expect(unavailable.backend).toBe('etcd')
    expect(unavailable.message).toBe('etcd: connection refused at 127.0.0.1:2379')
    const auth = new AuthError('redis', 'WRONGPASS invalid username-password pair')
    expect(auth.backend).toBe('redis')
    expect(auth.message).toBe('redis: WRONGPASS invalid username-password pair')
  })

  it('names the consumer, the event kind and the timeout in AckTimeoutError', () => {
    const error = new AckTimeoutError('interfaces', 'resync', 10_000)
    expect(error.consumer).toBe('interfaces')
    expect(error.eventKind).toBe('resync')
    expect(error.timeoutMs).toBe(10_000)
    expect(error.message).toContain(`consumer 'interfaces'`)
    expect(error.message).toContain('resync event within 10000 ms')
    expect(error.message).toContain('done()')
    // A handler that threw is the other common cause: the message says where to look.
    expect(error.message).toContain('if its events$ handler threw')
    expect(error.message).toContain('handleEvents()')
  })

  it('names the consumer and describes the cause in ConsumerError', () => {
    const cause = new Error('route table full')
    const error = new ConsumerError('routes', 'change', cause)
    expect(error.consumer).toBe('routes')
    expect(error.eventKind).toBe('change')
    expect(error.cause).toBe(cause)
    expect(error.message).toBe(
      `consumer 'routes' failed to apply its change event: route table full`,
    )
    expect(new ConsumerError('routes', 'resync', 'no space').message).toMatch(/: no space$/)
  })

  it('names the key, the codec and the consumer in CodecError', () => {
    const cause = new SyntaxError('Unexpected token')
    const error = new CodecError('config/a', 'json', cause, 'routes')
    expect(error.key).toBe('config/a')
    expect(error.codec).toBe('json')
    expect(error.consumer).toBe('routes')
    expect(error.cause).toBe(cause)
    expect(error.message).toBe(
      `key 'config/a': the json codec failed for consumer 'routes': Unexpected token`,
    )
  })

  it('leaves the consumer out of a CodecError without one', () => {
    const error = new CodecError('config/a', 'string', new TypeError('bad UTF-8'))
    expect(error.consumer).toBeUndefined()
    expect(error.message).toBe(`key 'config/a': the string codec failed: bad UTF-8`)
  })

  it('names the backend and the capability in CapabilityError', () => {
    const plain = new CapabilityError('filedb', 'write')
    expect(plain.backend).toBe('filedb')
    expect(plain.capability).toBe('write')
    expect(plain.message).toBe('the filedb store does not support write')
    expect(new CapabilityError('redis', 'ttl', 'use a key expiry').message).toBe(
      'the redis store does not support ttl: use a key expiry',
    )
  })

  it('names the source and the field in ConfigError', () => {
    const error = new ConfigError('etcd.yaml:3', 'dial-timeout', 'expected a duration')
    expect(error.source).toBe('etcd.yaml:3')
    expect(error.field).toBe('dial-timeout')
    expect(error.message).toBe(`etcd.yaml:3: field 'dial-timeout': expected a duration`)
    const noField = new ConfigError('--etcd-config', undefined, 'expected a file path')
    expect(noField.field).toBeUndefined()
    expect(noField.message).toBe('--etcd-config: expected a file path')
  })

  it('names what was closed in ClosedError', () => {
    const error = new ClosedError('the etcd store')
    expect(error.what).toBe('the etcd store')
    expect(error.message).toBe('the etcd store is closed')
  })

  it('describes any thrown value in one line', () => {
    expect(describeError(new Error('boom'))).toBe('boom')
    expect(describeError(new UnavailableError('etcd', 'down'))).toBe('etcd: down')
    expect(describeError('plain text')).toBe('plain text')
    expect(describeError({ code: 14 })).toBe('{"code":14}')
    expect(describeError([1, 'a'])).toBe('[1,"a"]')
    expect(describeError(42)).toBe('42')
    expect(describeError(null)).toBe('null')
    expect(describeError(undefined)).toBe('undefined')
    expect(describeError(Symbol('s'))).toBe('Symbol(s)')
    expect(describeError(12n)).toBe('12')
  })

  it('describes a value JSON cannot show', () => {
    const cyclic: Record<string, unknown> = {}
    cyclic['self'] = cyclic
    expect(describeError(cyclic)).toBe('[object Object]')
  })
})

describe('valuesEqual', () => {
  it('compares bytes by content', () => {
    expect(valuesEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3]))).toBe(true)
    expect(valuesEqual(new Uint8Array(), new Uint8Array())).toBe(true)
    expect(valuesEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4]))).toBe(false)
    expect(valuesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3]))).toBe(false)
    expect(valuesEqual(Buffer.from('ab'), new Uint8Array([0x61, 0x62]))).toBe(true)
  })

  it('compares bytes to other things as different', () => {
    expect(valuesEqual(new Uint8Array([1, 2]), [1, 2])).toBe(false)
    expect(valuesEqual([1, 2], new Uint8Array([1, 2]))).toBe(false)
    expect(valuesEqual(new Uint8Array([1]), '1')).toBe(false)
  })

  it('compares scalars with Object.is', () => {
    expect(valuesEqual(1, 1)).toBe(true)
    expect(valuesEqual('a', 'a')).toBe(true)
    expect(valuesEqual(NaN, NaN)).toBe(true)
    expect(valuesEqual(0, -0)).toBe(false)
    expect(valuesEqual(1, '1')).toBe(false)
    expect(valuesEqual(null, undefined)).toBe(false)
    expect(valuesEqual(null, {})).toBe(false)
    expect(valuesEqual({}, null)).toBe(false)
  })

  it('compares plain objects deeply, whatever the key order', () => {
    expect(valuesEqual({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 })).toBe(true)
    expect(valuesEqual({}, {})).toBe(true)
    expect(valuesEqual({ a: 1 }, { a: 2 })).toBe(false)
    expect(valuesEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false)
    expect(valuesEqual({ a: 1, b: 2 }, { a: 1 })).toBe(false)
    expect(valuesEqual({ a: { b: 1 } }, { a: { b: '1' } })).toBe(false)
  })

  it('tells a missing key from a key holding undefined', () => {
    expect(valuesEqual({ a: undefined }, { b: undefined })).toBe(false)
    expect(valuesEqual({ a: undefined, b: 1 }, { b: 1, c: undefined })).toBe(false)
  })

  it('compares arrays in order, deeply', () => {
    expect(valuesEqual([1, [2, { x: 3 }]], [1, [2, { x: 3 }]])).toBe(true)
    expect(valuesEqual([], [])).toBe(true)
    expect(valuesEqual([1, 2], [2, 1])).toBe(false)
    expect(valuesEqual([1, 2], [1, 2, 3])).toBe(false)
    expect(valuesEqual([1], { 0: 1 })).toBe(false)
    expect(valuesEqual({ 0: 1 }, [1])).toBe(false)
  })

  it('compares bytes nested in plain data by content', () => {
    expect(valuesEqual({ raw: new Uint8Array([7]) }, { raw: new Uint8Array([7]) })).toBe(true)
    expect(valuesEqual({ raw: new Uint8Array([7]) }, { raw: new Uint8Array([8]) })).toBe(false)
  })

  // BUG (src/core/equal.ts:12-24): every non-array object is compared by its own enumerable
  // keys, so objects that are not plain data (Date, Map, Set, class instances with no own keys)
  // all compare equal to each other, instead of with Object.is as documented.
  it('compares objects that are not plain data with Object.is (Date, Map)', () => {
    expect(valuesEqual(new Date(0), new Date(86_400_000))).toBe(false)
    expect(valuesEqual(new Map([['a', 1]]), new Map([['b', 2]]))).toBe(false)
  })

  // BUG (src/core/equal.ts:7-24): bytes are compared by content only against other
  // Uint8Arrays; against a plain object with the same indexed keys they fall through to the
  // object comparison and compare equal.
  it('compares bytes with a plain object as different', () => {
    expect(valuesEqual(new Uint8Array([1, 2]), { 0: 1, 1: 2 })).toBe(false)
  })
})

describe('createSnapshot', () => {
  it('maps each key to its item', () => {
    const a = kv('a', 1, 1)
    const snapshot = createSnapshot([a, kv('b', 2, 2)])
    expect(snapshot.size).toBe(2)
    expect(snapshot.get('a')).toBe(a)
    expect(snapshot.get('b')?.value).toBe(2)
    expect(snapshot.get('c')).toBeUndefined()
  })

  it('keeps the later entry of a key listed twice', () => {
    const snapshot = createSnapshot([kv('a', 1, 1), kv('a', 2, 5)])
    expect(snapshot.size).toBe(1)
    expect(snapshot.get('a')).toEqual(kv('a', 2, 5))
  })

  it('takes any iterable, an empty one included', () => {
    function* items(): Generator<KeyValue<string>> {
      yield kv('x', 'y', 1)
    }
    expect([...createSnapshot(items()).keys()]).toEqual(['x'])
    expect(createSnapshot([]).size).toBe(0)
  })

  it('is frozen: set, delete and clear throw or have no effect', () => {
    const snapshot = createSnapshot([kv('a', 1, 1)]) as Map<string, KeyValue<number>>
    const attempts = [
      () => snapshot.set('b', kv('b', 2, 2)),
      () => snapshot.set('a', kv('a', 9, 9)),
      () => snapshot.delete('a'),
      () => {
        snapshot.clear()
      },
    ]
    for (const attempt of attempts) {
      try {
        attempt()
      } catch {
        // Throwing is one of the two allowed outcomes; the content is checked below.
      }
    }
    expect(Object.isFrozen(snapshot)).toBe(true)
    expect([...snapshot]).toEqual([['a', kv('a', 1, 1)]])
  })
})

describe('applyChanges', () => {
  const base = (): Snapshot<string> =>
    createSnapshot([kv('a', 'A', 1), kv('b', 'B', 2), kv('c', 'C', 3)])

  it('applies puts and deletes into a new snapshot', () => {
    const before = base()
    const after = applyChanges(before, [
      { op: 'put', key: 'b', value: 'B2', prev: 'B', revision: r(4) },
      { op: 'put', key: 'd', value: 'D', revision: r(4) },
      { op: 'delete', key: 'c', prev: 'C', revision: r(4) },
    ])
    expect(Object.fromEntries([...after].map(([key, item]) => [key, item]))).toEqual({
      a: kv('a', 'A', 1),
      b: kv('b', 'B2', 4),
      d: kv('d', 'D', 4),
    })
  })

  it('leaves the input untouched', () => {
    const before = base()
    const copy = [...before]
    applyChanges(before, [
      { op: 'put', key: 'a', value: 'A2', revision: r(4) },
      { op: 'delete', key: 'b', revision: r(4) },
      { op: 'put', key: 'z', value: 'Z', revision: r(4) },
    ])
    expect([...before]).toEqual(copy)
    expect(before.get('a')?.value).toBe('A')
    expect(before.has('b')).toBe(true)
    expect(before.has('z')).toBe(false)
  })

  it('shares the entries that did not change', () => {
    const before = base()
    const after = applyChanges(before, [{ op: 'put', key: 'b', value: 'B2', revision: r(4) }])
    expect(after).not.toBe(before)
    expect(after.get('a')).toBe(before.get('a'))
    expect(after.get('c')).toBe(before.get('c'))
    expect(after.get('b')).not.toBe(before.get('b'))
  })

  it('returns a frozen snapshot', () => {
    const after = applyChanges(base(), [{ op: 'put', key: 'x', value: 'X', revision: r(4) }])
    try {
      ;(after as Map<string, KeyValue<string>>).set('y', kv('y', 'Y', 5))
    } catch {
      // Throwing is fine; the content must not change.
    }
    expect(after.has('y')).toBe(false)
    expect(Object.isFrozen(after)).toBe(true)
  })

  it('applies changes in order (the last change of a key wins)', () => {
    const after = applyChanges(base(), [
      { op: 'put', key: 'a', value: 'A2', revision: r(4) },
      { op: 'delete', key: 'a', revision: r(5) },
      { op: 'put', key: 'b', value: 'B2', revision: r(4) },
      { op: 'put', key: 'b', value: 'B3', revision: r(5) },
      { op: 'delete', key: 'c', revision: r(4) },
      { op: 'put', key: 'c', value: 'C2', revision: r(5) },
    ])
    expect(after.has('a')).toBe(false)
    expect(after.get('b')).toEqual(kv('b', 'B3', 5))
    expect(after.get('c')).toEqual(kv('c', 'C2', 5))
  })

  it('ignores a delete of a missing key', () => {
    const before = base()
    const after = applyChanges(before, [{ op: 'delete', key: 'nope', revision: r(9) }])
    expect([...after]).toEqual([...before])
  })

  it('applies onto an empty snapshot', () => {
    const after = applyChanges(createSnapshot<number>([]), [
      { op: 'put', key: 'k', value: 1, revision: r(1) },
    ])
    expect(after.get('k')).toEqual(kv('k', 1, 1))
  })
})

describe('diffSnapshots', () => {
  it('returns nothing for equal snapshots', () => {
    const snapshot = createSnapshot([kv('a', 1, 1)])
    expect(diffSnapshots(snapshot, createSnapshot([kv('a', 1, 1)]), r(2))).toEqual([])
    expect(diffSnapshots(createSnapshot([]), createSnapshot([]), r(2))).toEqual([])
  })

  it('puts new keys without prev and changed keys with prev, at their own revision', () => {
    const before = createSnapshot([kv('a', 1, 1), kv('b', 2, 2)])
    const after = createSnapshot([kv('a', 1, 1), kv('b', 3, 5), kv('c', 4, 6)])
    expect(diffSnapshots(before, after, r(7))).toEqual<Change<number>[]>([
      { op: 'put', key: 'b', value: 3, prev: 2, revision: r(5) },
      { op: 'put', key: 'c', value: 4, revision: r(6) },
    ])
    const [, added] = diffSnapshots(before, after, r(7))
    expect(added !== undefined && 'prev' in added).toBe(false)
  })

  it('deletes keys that are gone, carrying the last value, at the given revision', () => {
    const before = createSnapshot([kv('a', 'x', 1), kv('b', 'y', 2)])
    const after = createSnapshot([kv('a', 'x', 1)])
    expect(diffSnapshots(before, after, r(9))).toEqual<Change<string>[]>([
      { op: 'delete', key: 'b', prev: 'y', revision: r(9) },
    ])
  })

  it('sorts puts and deletes together by key', () => {
    const before = createSnapshot([kv('d', 1, 1), kv('b', 1, 1), kv('x', 1, 1)])
    const after = createSnapshot([kv('e', 1, 2), kv('a', 1, 2), kv('x', 2, 2), kv('c', 1, 2)])
    const keys = diffSnapshots(before, after, r(3)).map((change) => `${change.op} ${change.key}`)
    expect(keys).toEqual(['put a', 'delete b', 'put c', 'delete d', 'put e', 'put x'])
  })

  it('sorts by code unit, as the stores list keys', () => {
    const after = createSnapshot([kv('b', 1, 1), kv('B', 1, 1), kv('a/1', 1, 1), kv('a', 1, 1)])
    const keys = diffSnapshots(createSnapshot([]), after, r(1)).map((change) => change.key)
    expect(keys).toEqual(['B', 'a', 'a/1', 'b'])
  })

  it('compares values by content by default', () => {
    const before = createSnapshot<unknown>([
      kv('a', new Uint8Array([1, 2]), 1),
      kv('o', { n: [1] }, 1),
    ])
    const after = createSnapshot<unknown>([
      kv('a', new Uint8Array([1, 2]), 3),
      kv('o', { n: [1] }, 3),
    ])
    expect(diffSnapshots<unknown>(before, after, r(3))).toEqual([])
  })

  it('takes a custom equality', () => {
    const before = createSnapshot([kv('a', 'Hello', 1)])
    const after = createSnapshot([kv('a', 'HELLO', 2)])
    const caseless = (x: string, y: string) => x.toLowerCase() === y.toLowerCase()
    expect(diffSnapshots(before, after, r(2), caseless)).toEqual([])
    expect(diffSnapshots(before, after, r(2))).toHaveLength(1)
  })

  it('accepts any map of values as before (a consumer view)', () => {
    const view = new Map([['a', { value: 1 }]])
    expect(diffSnapshots(view, createSnapshot([kv('a', 2, 4)]), r(4))).toEqual([
      { op: 'put', key: 'a', value: 2, prev: 1, revision: r(4) },
    ])
  })

  it('turns before into after when applied', () => {
    const before = createSnapshot([kv('a', 1, 1), kv('b', 2, 2), kv('c', 3, 3)])
    const after = createSnapshot([kv('b', 20, 4), kv('c', 3, 3), kv('d', 4, 4)])
    const applied = applyChanges(before, diffSnapshots(before, after, r(4)))
    expect([...applied].sort()).toEqual([...after].sort())
  })
})

describe('matchesAny', () => {
  it('matches a key under any of the prefixes', () => {
    expect(matchesAny('config/a', ['routes/', 'config/'])).toBe(true)
    expect(matchesAny('config/a', ['config/a'])).toBe(true)
    expect(matchesAny('config/a', ['routes/'])).toBe(false)
  })

  it('matches by string prefix, not by path segment', () => {
    expect(matchesAny('config-old/a', ['config'])).toBe(true)
    expect(matchesAny('config-old/a', ['config/'])).toBe(false)
    expect(matchesAny('Config/a', ['config/'])).toBe(false)
  })

  it('matches every key with the empty prefix and none with no prefixes', () => {
    expect(matchesAny('anything', [''])).toBe(true)
    expect(matchesAny('anything', [])).toBe(false)
  })
})
