declare const revisionBrand: unique symbol

/**
 * An opaque, monotonic position in a store's history. It is a branded `bigint`, never a JS
 * `number`: etcd revisions are int64. Backends without revisions (Redis, files) count their own.
 *
 * @example
 * ```ts
 * import { revision, compareRevisions } from 'rx-datasync'
 * compareRevisions(revision(5n), revision('7')) // -1
 * ```
 */
export type Revision = bigint & { readonly [revisionBrand]: true }

/** Makes a {@link Revision} from a bigint, a decimal string or a safe non-negative integer. */
export function revision(value: bigint | string | number): Revision {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new TypeError(`revision: expected a safe integer, got ${value}`)
  }
  if (typeof value === 'string' && !/^-?\d+$/.test(value)) {
    throw new TypeError(
      `revision: expected a decimal string of digits, got ${JSON.stringify(value)}`,
    )
  }
  const big = BigInt(value)
  if (big < 0n) throw new TypeError(`revision: expected a non-negative value, got ${value}`)
  return big as Revision
}

/** The revision before any write: every real revision is greater. */
export const ZERO_REVISION: Revision = revision(0n)

/** -1, 0 or 1 as `a` is before, equal to or after `b`. */
export function compareRevisions(a: Revision, b: Revision): -1 | 0 | 1 {
  return a < b ? -1 : a > b ? 1 : 0
}

/** The later of two revisions. */
export function maxRevision(a: Revision, b: Revision): Revision {
  return a >= b ? a : b
}
