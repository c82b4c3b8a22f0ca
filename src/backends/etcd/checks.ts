import type { Duration } from '../../core/duration.js'
import type { TxnCondition } from '../../core/store.js'
import { argumentChecks, noDuplicates, show, type ArgumentChecks } from '../../internal/checks.js'
import { NAME, tooLarge } from './errors.js'
import { keyBytes, prefixRange } from './keys.js'
import type { EtcdTxnOp } from './options.js'
import {
  CompareResult,
  CompareTarget,
  type WireCompare,
  type WireRequestOp,
} from './wire/encode.js'

const check: ArgumentChecks = argumentChecks({ backend: NAME, bytesOnly: true })

/** @throws TypeError unless `key` is a non-empty string. */
export const assertKey: ArgumentChecks['key'] = check.key
/** @throws TypeError unless `prefix` is a string (empty for every key). */
export const assertPrefix: ArgumentChecks['prefix'] = check.prefix
/** @throws TypeError unless `prefixes` is an array of strings. */
export const assertPrefixes: ArgumentChecks['prefixes'] = check.prefixes
/** @throws TypeError unless `value` is bytes (a `Uint8Array`). */
export const assertValue: ArgumentChecks['value'] = check.value
/** A TTL in milliseconds. @throws TypeError unless it is a positive duration. */
export const ttlMillis: ArgumentChecks['ttlMs'] = check.ttlMs

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
export function toCompare(condition: TxnCondition<Uint8Array>, index: number): WireCompare {
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
    return {
      key,
      target: CompareTarget.version,
      result: condition.exists ? CompareResult.greater : CompareResult.equal,
      number: 0n,
    }
  }
  if ('revision' in condition) {
    if (typeof condition.revision !== 'bigint') {
      throw new TypeError(
        `${NAME} ${what}: expected revision to be a Revision (bigint), got ${show(condition.revision)}`,
      )
    }
    return {
      key,
      target: CompareTarget.mod,
      result: CompareResult.equal,
      number: condition.revision,
    }
  }
  if ('value' in condition) {
    assertValue(what, condition.key, condition.value)
    // etcd: comparing the value of a missing key always fails, as compare-and-swap wants.
    return { key, target: CompareTarget.value, result: CompareResult.equal, value: condition.value }
  }
  throw new TypeError(`${NAME} ${what}: expected one of exists, value or revision, got none`)
}

/**
 * Refuses a transaction that writes one key twice before etcd does, naming the key: a key put
 * twice, or put and deleted (by key or by prefix). Overlapping deletes are allowed.
 */
export function assertNoDuplicates(ops: readonly CheckedOp[]): void {
  noDuplicates(NAME, ops)
}

/** The transaction's operations as etcd requests; `leases` holds each put's lease id, if any. */
export function toRequestOps(
  ops: readonly CheckedOp[],
  leases: readonly (string | undefined)[],
): WireRequestOp[] {
  return ops.map((op, index): WireRequestOp => {
    if (op.op === 'put') {
      const lease = leases[index]
      return {
        put: {
          key: keyBytes(op.key),
          value: op.value,
          lease: lease === undefined ? undefined : BigInt(lease),
        },
      }
    }
    const range = op.prefix === true ? prefixRange(op.key) : undefined
    return {
      delete: range ? { key: range.start, rangeEnd: range.end } : { key: keyBytes(op.key) },
    }
  })
}

/**
 * Refuses a write whose keys and values add up to more than `limit` bytes (the store's
 * `maxRequestBytes`), before it is sent: etcd would refuse it, and a gRPC rejection on the way
 * costs a reconnect. `what` names the write, `key` its (first) key.
 *
 * @throws DatasyncError `invalid-argument`, not retryable, naming the key, the size and the limit.
 */
export function assertRequestSize(
  what: string,
  entries: readonly { readonly key: string; readonly value?: Uint8Array }[],
  limit: number,
): void {
  let bytes = 0
  for (const entry of entries) bytes += keyBytes(entry.key).length + (entry.value?.length ?? 0)
  if (bytes > limit) {
    const largest = entries.reduce((a, b) =>
      (b.value?.length ?? 0) > (a.value?.length ?? 0) ? b : a,
    )
    throw tooLarge(
      what,
      `it is ${bytes} bytes, over the store's maxRequestBytes of ${limit} bytes`,
      largest.key,
    )
  }
}
