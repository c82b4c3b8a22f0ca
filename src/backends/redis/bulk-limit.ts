import { describe } from '../../core/errors.js'
import { toDatasyncError, tooLarge } from './errors.js'
import type { Write } from './scripts.js'

/** Redis refuses a `proto-max-bulk-len` under 1 MiB: an argument within it fits every server. */
export const MIN_BULK_LEN = 1024 * 1024

/** How the store reads the servers' `proto-max-bulk-len` (the smallest, on a Cluster). */
export type ReadBulkLimit = () => Promise<number>

/** The largest argument among `writes`: a key, or a put's value. */
function largest(writes: readonly Write[]): { key: string; bytes: number } | undefined {
  let found: { key: string; bytes: number } | undefined
  for (const item of writes) {
    const bytes = Math.max(
      Buffer.byteLength(item.key),
      item.op === 'put' ? item.value.byteLength : 0,
    )
    if (!found || bytes > found.bytes) found = { key: item.key, bytes }
  }
  return found
}

/**
 * The size check of a store's writes. Redis refuses an argument over its `proto-max-bulk-len` by
 * replying with an error and dropping the connection while the client may still be sending (so
 * the command fails either with that error or, if the reset wins, only after `commandTimeout`):
 * a write is checked before it is sent instead, against the smaller of `maxValueBytes` and the
 * server's own limit.
 *
 * `maxValueBytes` is checked at once. An argument over 1 MiB (the least Redis accepts as a limit,
 * so nothing smaller needs it) waits for the server's `proto-max-bulk-len`, read with CONFIG GET
 * each time (a large write is rare, and the limit can change with CONFIG SET); the writes made
 * meanwhile wait behind it, so writes still go out in the order they were made. Where CONFIG is
 * not allowed (an ACL user without it, a managed service that renames it), the check falls back
 * to `maxValueBytes` and says so once, as a process warning.
 */
export class BulkLimit {
  readonly #maxValueBytes: number
  readonly #read: ReadBulkLimit
  /** Resolves once every write made so far has been handed to its `send`. */
  #gate: Promise<void> | undefined
  /** Why the server's limit could not be read, once it could not. */
  #unreadable: string | undefined

  constructor(maxValueBytes: number, read: ReadBulkLimit) {
    this.#maxValueBytes = maxValueBytes
    this.#read = read
  }

  /**
   * Calls `send` once `writes` are known to fit, and returns its result; fails with an
   * `invalid-argument` error naming the key, its size and the limit (never retried) when one does
   * not. Throws at once for an argument over `maxValueBytes`.
   */
  run<T>(what: string, writes: readonly Write[], send: () => Promise<T>): Promise<T> {
    const big = largest(writes)
    if (big && big.bytes > this.#maxValueBytes) {
      throw tooLarge(what, big.key, big.bytes, this.#maxValueBytes, 'maxValueBytes')
    }
    const before = this.#gate
    const needsServer = big !== undefined && big.bytes > MIN_BULK_LEN
    if (!needsServer && before === undefined) return send()
    let release = (): void => undefined
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    this.#gate = gate
    void gate.then(() => {
      if (this.#gate === gate) this.#gate = undefined
    })
    const checked = (before ?? Promise.resolve()).then(async () => {
      if (needsServer) await this.#check(what, big)
    })
    return checked.then(
      () => {
        try {
          return send()
        } finally {
          release()
        }
      },
      (error: unknown) => {
        release()
        throw error
      },
    )
  }

  async #check(what: string, big: { key: string; bytes: number }): Promise<void> {
    let limit: number
    try {
      limit = await this.#read()
    } catch (error) {
      const mapped = toDatasyncError(error, 'CONFIG GET proto-max-bulk-len').error
      // A lost connection: the write would fail the same way.
      if (mapped.code === 'unavailable') throw mapped
      if (this.#unreadable === undefined) {
        this.#unreadable = describe(error)
        process.emitWarning(
          `redis: cannot read the server's proto-max-bulk-len (${this.#unreadable}); writes are checked against maxValueBytes (${this.#maxValueBytes} bytes) only: set it to the server's limit, or allow CONFIG GET`,
          { code: 'RX_DATASYNC_REDIS_BULK_LIMIT' },
        )
      }
      return
    }
    if (big.bytes > limit) throw tooLarge(what, big.key, big.bytes, limit, 'proto-max-bulk-len')
  }
}
