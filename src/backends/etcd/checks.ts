import type { ICompare } from 'etcd3'
import { toMillis, type Duration } from '../../core/duration.js'
import { DatasyncError } from '../../core/errors.js'
import type { TxnCondition } from '../../core/store.js'
import { NAME } from './errors.js'
import { keyBytes, toBuffer } from './keys.js'
import type { EtcdTxnOp } from './etcd-store.js'

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

/** @throws TypeError unless `key` is a non-empty string. */
export function assertKey(what: string, key: unknown): asserts key is string {
  if (typeof key !== 'string' || key === '') {
    throw new TypeError(
      `${NAME} ${what}: expected the key to be a non-empty string, got ${show(key)}`,
    )
  }
}

/** @throws TypeError unless `prefix` is a string (empty for every key). */
export function assertPrefix(what: string, prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string') {
    throw new TypeError(
      `${NAME} ${what}: expected the prefix to be a string ('' for every key), got ${show(prefix)}`,
    )
  }
}

/** @throws TypeError unless `prefixes` is an array of strings. */
export function assertPrefixes(prefixes: unknown): asserts prefixes is readonly string[] {
  if (!Array.isArray(prefixes)) {
    throw new TypeError(`${NAME} watch: expected an array of prefixes, got ${show(prefixes)}`)
  }
  for (const prefix of prefixes) assertPrefix('watch', prefix)
}

/** @throws TypeError unless `value` is bytes (a `Uint8Array`). */
export function assertValue(what: string, key: string, value: unknown): void {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(
      `${NAME} ${what}: expected the value of ${show(key)} to be a Uint8Array (use withCodec for other types), got ${show(value)}`,
    )
  }
}

/** A TTL in milliseconds. @throws TypeError unless it is a positive duration. */
export function ttlMillis(what: string, ttl: Duration): number {
  const ms = toMillis(ttl, `${NAME} ${what}: ttl`)
  if (ms <= 0)
    throw new TypeError(`${NAME} ${what}: ttl: expected a positive duration, got ${show(ttl)}`)
  return ms
}

/** A checked transaction operation. */
export type CheckedOp =
  | {
      readonly op: 'put'
      readonly key: string
      readonly value: Uint8Array
      readonly ttl?: Duration
      readonly session?: boolean
    }
  | { readonly op: 'delete'; readonly key: string; readonly prefix?: boolean }

/** The transaction's operations, checked. @throws TypeError naming the operation that is wrong. */
export function checkOps(ops: readonly EtcdTxnOp<Uint8Array>[]): CheckedOp[] {
  if (!Array.isArray(ops)) {
    throw new TypeError(`${NAME} txn: expected an array of operations, got ${show(ops)}`)
  }
  return ops.map((op: EtcdTxnOp<Uint8Array>, index): CheckedOp => {
    const what = `txn operation ${index}`
    if (op.op === 'put') {
      assertKey(what, op.key)
      assertValue(what, op.key, op.value)
      if (op.ttl !== undefined) ttlMillis(what, op.ttl)
      return op
    }
    if ((op.op as unknown) === 'delete') {
      if (op.prefix === true) assertPrefix(what, op.key)
      else assertKey(what, op.key)
      return op
    }
    throw new TypeError(
      `${NAME} ${what}: expected op to be 'put' or 'delete', got ${show((op as { op: unknown }).op)}`,
    )
  })
}

/** A transaction condition as an etcd compare. @throws TypeError naming the condition that is wrong. */
export function toCompare(condition: TxnCondition<Uint8Array>, index: number): ICompare {
  const what = `txn condition ${index}`
  assertKey(what, condition.key)
  const key = keyBytes(condition.key)
  if ('exists' in condition) {
    if (typeof condition.exists !== 'boolean') {
      throw new TypeError(
        `${NAME} ${what}: expected exists to be a boolean, got ${show(condition.exists)}`,
      )
    }
    // A key exists when its version is above 0.
    return { key, target: 'Version', result: condition.exists ? 'Greater' : 'Equal', version: 0 }
  }
  if ('revision' in condition) {
    if (typeof condition.revision !== 'bigint') {
      throw new TypeError(
        `${NAME} ${what}: expected revision to be a Revision (bigint), got ${show(condition.revision)}`,
      )
    }
    return { key, target: 'Mod', result: 'Equal', mod_revision: condition.revision.toString() }
  }
  if ('value' in condition) {
    assertValue(what, condition.key, condition.value)
    // etcd: comparing the value of a missing key always fails, as compare-and-swap wants.
    return { key, target: 'Value', result: 'Equal', value: toBuffer(condition.value) }
  }
  throw new TypeError(`${NAME} ${what}: expected one of exists, value or revision, got none`)
}

/**
 * Refuses a transaction that writes one key twice before etcd does, naming the key: a key put
 * twice, or put and deleted (by key or by prefix). Overlapping deletes are allowed.
 */
export function assertNoDuplicates(ops: readonly CheckedOp[]): void {
  const puts = new Set<string>()
  const deletes = ops.filter((op) => op.op === 'delete')
  for (const op of ops) {
    if (op.op !== 'put') continue
    const clash =
      puts.has(op.key) ||
      deletes.some((del) => (del.prefix === true ? op.key.startsWith(del.key) : op.key === del.key))
    if (clash) {
      throw new DatasyncError(
        'invalid-argument',
        `${NAME} txn: duplicate key given in txn request: ${show(op.key)} is written more than once; put or delete each key at most once per transaction`,
      )
    }
    puts.add(op.key)
  }
}
