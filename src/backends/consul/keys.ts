import { toMillis, type Duration } from '../../core/duration.js'
import { CapabilityError, DatasyncError } from '../../core/errors.js'
import type { TxnCondition, TxnOp } from '../../core/store.js'
import { NAME } from './errors.js'

/** Consul's longest session TTL. */
const MAX_TTL_SECONDS = 86_400

/** A short description of a value the caller passed, for error messages. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'bigint') return `${value.toString()}n`
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (Array.isArray(value)) return 'an array'
  return `a value of type ${typeof value}`
}

/**
 * Why a key (or prefix) cannot travel in a Consul KV URL, or undefined when it can. Consul's HTTP
 * server cleans request paths: a leading `/`, an empty segment (`a//b`) or a `.`/`..` segment
 * would be redirected to another key.
 */
function pathProblem(key: string): string | undefined {
  if (key.startsWith('/')) return `it starts with '/' (Consul strips it); drop the leading '/'`
  const segments = key.split('/')
  for (const [i, segment] of segments.entries()) {
    if (segment === '' && i > 0 && i < segments.length - 1) {
      return `it has an empty segment ('//'), which Consul's HTTP API cannot address`
    }
    if (segment === '.' || segment === '..') {
      return `it has a '${segment}' segment, which Consul's HTTP API cannot address`
    }
  }
  return undefined
}

/** @throws TypeError unless `key` is a non-empty string that Consul can address. */
export function assertKey(what: string, key: unknown): asserts key is string {
  if (typeof key !== 'string' || key === '') {
    throw new TypeError(
      `${NAME} ${what}: expected the key to be a non-empty string, got ${show(key)}`,
    )
  }
  const problem = pathProblem(key)
  if (problem !== undefined) {
    throw new TypeError(`${NAME} ${what}: the key ${show(key)} cannot be used: ${problem}`)
  }
}

/** @throws TypeError unless `prefix` is a string (`''` for every key) that Consul can address. */
export function assertPrefix(what: string, prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string') {
    throw new TypeError(
      `${NAME} ${what}: expected the prefix to be a string ('' for every key), got ${show(prefix)}`,
    )
  }
  const problem = pathProblem(prefix)
  if (problem !== undefined) {
    throw new TypeError(`${NAME} ${what}: the prefix ${show(prefix)} cannot be used: ${problem}`)
  }
}

/** @throws TypeError unless `prefixes` is an array of valid prefixes. */
export function assertPrefixes(prefixes: unknown): asserts prefixes is readonly string[] {
  if (!Array.isArray(prefixes)) {
    throw new TypeError(`${NAME} watch: expected an array of prefixes, got ${show(prefixes)}`)
  }
  for (const prefix of prefixes) assertPrefix('watch', prefix)
}

/** @throws TypeError unless `value` is bytes. */
export function assertValue(
  what: string,
  key: string,
  value: unknown,
): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(
      `${NAME} ${what}: expected the value of key ${show(key)} to be a Uint8Array (wrap the store with withCodec for other types), got ${show(value)}`,
    )
  }
}

/** Bytes as Consul's transaction API takes them. */
export function base64(value: Uint8Array): string {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')
}

/**
 * A TTL in whole seconds (rounded up), within what Consul sessions allow.
 *
 * @throws TypeError for a malformed or non-positive duration.
 * @throws CapabilityError for a TTL below `minTtlMs` (the servers' `session_ttl_min`) or above 24h.
 */
export function ttlSeconds(what: string, ttl: Duration, minTtlMs: number): number {
  const ms = toMillis(ttl, `${NAME} ${what}: ttl`)
  if (ms <= 0) {
    throw new TypeError(`${NAME} ${what}: ttl: expected a positive duration, got ${show(ttl)}`)
  }
  const seconds = Math.ceil(ms / 1000)
  const minSeconds = Math.ceil(minTtlMs / 1000)
  if (seconds < minSeconds || seconds > MAX_TTL_SECONDS) {
    throw new CapabilityError(
      NAME,
      `a ttl of ${show(ttl)}`,
      `a key's TTL is a Consul session's TTL, which must be from ${minSeconds}s (the servers' session_ttl_min, the store's minTtl option) to 24h; Consul deletes the key about twice the TTL after the put`,
    )
  }
  return seconds
}

/** A write of a transaction, checked. */
export type Write =
  | { readonly op: 'put'; readonly key: string; readonly value: Uint8Array; readonly ttl?: number }
  | { readonly op: 'delete'; readonly key: string; readonly prefix: boolean }

/** Checks a transaction's operations and turns TTLs into seconds. */
export function toWrites(ops: readonly TxnOp<Uint8Array>[], minTtlMs: number): Write[] {
  if (!Array.isArray(ops)) {
    throw new TypeError(`${NAME} txn: expected an array of operations, got ${show(ops)}`)
  }
  const writes = ops.map((op: TxnOp<Uint8Array>, index): Write => {
    const what = `txn operation ${index}`
    if (op.op === 'put') {
      assertKey(what, op.key)
      assertValue(what, op.key, op.value)
      return op.ttl === undefined
        ? { op: 'put', key: op.key, value: op.value }
        : { op: 'put', key: op.key, value: op.value, ttl: ttlSeconds(what, op.ttl, minTtlMs) }
    }
    if ((op.op as unknown) === 'delete') {
      const prefix = op.prefix === true
      if (prefix) {
        assertPrefix(what, op.key)
        if (op.key === '') {
          throw new DatasyncError(
            'invalid-argument',
            `${NAME} ${what}: a transaction cannot delete every key (prefix ''): Consul's transactions need a key; use delete('', { prefix: true }) outside a transaction`,
          )
        }
      } else assertKey(what, op.key)
      return { op: 'delete', key: op.key, prefix }
    }
    throw new TypeError(
      `${NAME} ${what}: expected op to be 'put' or 'delete', got ${show((op as { op: unknown }).op)}`,
    )
  })
  assertNoDuplicates(writes)
  return writes
}

/** Checks a transaction's conditions. */
export function assertConditions(conditions: readonly TxnCondition<Uint8Array>[]): void {
  if (!Array.isArray(conditions)) {
    throw new TypeError(`${NAME} txn: expected an array of conditions, got ${show(conditions)}`)
  }
  conditions.forEach((condition: TxnCondition<Uint8Array>, index) => {
    const what = `txn condition ${index}`
    assertKey(what, condition.key)
    if ('exists' in condition) {
      if (typeof condition.exists !== 'boolean') {
        throw new TypeError(
          `${NAME} ${what}: expected exists to be a boolean, got ${show(condition.exists)}`,
        )
      }
    } else if ('revision' in condition) {
      if (typeof condition.revision !== 'bigint' || condition.revision < 0n) {
        throw new TypeError(
          `${NAME} ${what}: expected revision to be a Revision (a non-negative bigint), got ${show(condition.revision)}`,
        )
      }
      if (condition.revision > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new TypeError(
          `${NAME} ${what}: revision ${condition.revision}n is beyond what Consul's JSON API carries exactly`,
        )
      }
    } else if ('value' in condition) {
      assertValue(what, condition.key, condition.value)
    } else {
      throw new TypeError(`${NAME} ${what}: expected one of exists, value or revision, got none`)
    }
  })
}

/**
 * Refuses a transaction that writes one key twice, as etcd does: a key put twice, or put and
 * deleted (by key or by prefix). Overlapping deletes are allowed.
 */
function assertNoDuplicates(writes: readonly Write[]): void {
  const puts = new Set<string>()
  const deletes = writes.filter((write) => write.op === 'delete')
  for (const write of writes) {
    if (write.op !== 'put') continue
    const clash =
      puts.has(write.key) ||
      deletes.some((del) => (del.prefix ? write.key.startsWith(del.key) : write.key === del.key))
    if (clash) {
      throw new DatasyncError(
        'invalid-argument',
        `${NAME} txn: duplicate key given in txn request: ${show(write.key)} is written more than once; put or delete each key at most once per transaction`,
      )
    }
    puts.add(write.key)
  }
}
