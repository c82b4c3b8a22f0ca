import { toMillis, type Duration } from '../../core/duration.js'
import { CapabilityError, DatasyncError } from '../../core/errors.js'
import type { TxnCondition, TxnOp } from '../../core/store.js'
import {
  argumentChecks,
  show,
  type ArgumentChecks,
  type CheckedWrite,
} from '../../internal/checks.js'
import { NAME } from './errors.js'

/** Consul's longest session TTL. */
const MAX_TTL_SECONDS = 86_400

export { show }

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

const check: ArgumentChecks = argumentChecks({
  backend: NAME,
  keyProblem: pathProblem,
  bytesOnly: true,
})

/** @throws TypeError unless `key` is a non-empty string that Consul can address. */
export const assertKey: ArgumentChecks['key'] = check.key
/** @throws TypeError unless `prefix` is a string (`''` for every key) that Consul can address. */
export const assertPrefix: ArgumentChecks['prefix'] = check.prefix
/** @throws TypeError unless `prefixes` is an array of valid prefixes. */
export const assertPrefixes: ArgumentChecks['prefixes'] = check.prefixes
/** @throws TypeError unless `value` is bytes. */
export const assertValue: (what: string, key: string, value: unknown) => void = check.value

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

/** A write of a transaction, checked; a put's TTL in whole seconds. */
export type Write = CheckedWrite<Uint8Array>

/** Checks a transaction's operations and turns TTLs into seconds. */
export function toWrites(ops: readonly TxnOp<Uint8Array>[], minTtlMs: number): Write[] {
  const writes = check.writes(ops, (what, ttl) => ttlSeconds(what, ttl, minTtlMs))
  writes.forEach((write, index) => {
    if (write.op === 'delete' && write.prefix && write.key === '') {
      throw new DatasyncError(
        'invalid-argument',
        `${NAME} txn operation ${index}: a transaction cannot delete every key (prefix ''): Consul's transactions need a key; use delete('', { prefix: true }) outside a transaction`,
      )
    }
  })
  return writes
}

/** Checks a transaction's conditions, and that a revision fits Consul's JSON numbers. */
export function assertConditions(conditions: readonly TxnCondition<Uint8Array>[]): void {
  check.conditions(conditions)
  conditions.forEach((condition, index) => {
    if ('revision' in condition && condition.revision > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new TypeError(
        `${NAME} txn condition ${index}: revision ${condition.revision}n is beyond what Consul's JSON API carries exactly`,
      )
    }
  })
}
