import type pg from 'pg'
import type { TxnCondition } from '../../core/store.js'
import type { CheckedWrite } from '../../internal/checks.js'
import type { TableName } from './options.js'
import { LIVE, prefixEnd } from './sql.js'

/** A checked write; a put's TTL is in milliseconds. */
export type Write = CheckedWrite<Uint8Array>

/** What a write transaction did. */
export interface Outcome {
  readonly succeeded: boolean
  /** The revision of the transaction, or the current one when it changed nothing. */
  readonly revision: bigint
  /** Keys deleted (for `delete`). */
  readonly deleted: number
}

/**
 * Runs writes as one SQL transaction at one new revision:
 *
 * 1. `UPDATE <meta> SET revision = revision + 1 RETURNING revision`: the row lock serializes
 *    every writer of the table from here to its commit, so revisions are allocated in commit
 *    order, and a rollback gives its revision back (no gaps). The same statement queues the
 *    NOTIFY, which PostgreSQL sends only if the transaction commits.
 * 2. The conditions are read (under that lock nothing changes them) and checked here.
 * 3. Each write replaces the key's current row (`superseded_at` = the revision) and appends one.
 *
 * A transaction whose conditions fail, or that changes nothing (deletes of missing keys), rolls
 * back and returns the current revision. Any error rolls back too (the caller destroys the
 * connection).
 */
export async function runWrites(
  client: pg.ClientBase,
  table: TableName,
  writes: readonly Write[],
  conditions: readonly TxnCondition<Uint8Array>[],
): Promise<Outcome> {
  await client.query('BEGIN')
  const locked = await client.query<{ revision: string }>(
    `UPDATE ${table.meta} SET revision = revision + 1 WHERE id = 1
     RETURNING revision, pg_notify($1, revision::text)`,
    [table.channel],
  )
  const text = locked.rows[0]?.revision
  if (text === undefined) throw new Error(`${table.meta} has no meta row`)
  const at = BigInt(text)
  const rollback = async (succeeded: boolean): Promise<Outcome> => {
    await client.query('ROLLBACK')
    return { succeeded, revision: at - 1n, deleted: 0 }
  }
  if (conditions.length > 0 && !(await holds(client, table, conditions))) return rollback(false)
  let changed = 0
  let deleted = 0
  for (const write of writes) {
    if (write.op === 'put') {
      await client.query(
        `WITH old AS (
           UPDATE ${table.log} SET superseded_at = $1 WHERE key = $2 AND superseded_at IS NULL RETURNING 1
         )
         INSERT INTO ${table.log} (revision, key, deleted, value, expires_at)
         SELECT $1, $2, false, $3,
           CASE WHEN $4::bigint IS NULL THEN NULL ELSE now() + $4::bigint * interval '1 millisecond' END
         FROM (SELECT count(*) FROM old) AS replaced`,
        [
          text,
          write.key,
          Buffer.from(write.value.buffer, write.value.byteOffset, write.value.byteLength),
          write.ttl ?? null,
        ],
      )
      changed++
    } else {
      const range = write.prefix
        ? `key >= $2 AND ($3::text IS NULL OR key < $3)`
        : `key = $2 AND $3::text IS NULL`
      const result = await client.query(
        `WITH gone AS (
           UPDATE ${table.log} SET superseded_at = $1 WHERE ${LIVE} AND ${range} RETURNING key
         )
         INSERT INTO ${table.log} (revision, key, deleted) SELECT $1, key, true FROM gone`,
        [text, write.key, write.prefix ? prefixEnd(write.key) : null],
      )
      changed += result.rowCount ?? 0
      deleted += result.rowCount ?? 0
    }
  }
  if (changed === 0) return rollback(true)
  await client.query('COMMIT')
  return { succeeded: true, revision: at, deleted }
}

/** Whether every condition holds, read under the writers' lock. */
async function holds(
  client: pg.ClientBase,
  table: TableName,
  conditions: readonly TxnCondition<Uint8Array>[],
): Promise<boolean> {
  const keys = [...new Set(conditions.map((condition) => condition.key))]
  const result = await client.query<{ key: string; value: Buffer; revision: string }>(
    `SELECT key, value, revision FROM ${table.log} WHERE ${LIVE} AND key = ANY($1::text[])`,
    [keys],
  )
  const current = new Map(result.rows.map((row) => [row.key, row]))
  return conditions.every((condition) => {
    const row = current.get(condition.key)
    if ('exists' in condition) return condition.exists === (row !== undefined)
    if ('revision' in condition) return BigInt(row?.revision ?? 0) === condition.revision
    return row !== undefined && Buffer.from(condition.value).equals(row.value)
  })
}

/**
 * Writes a delete marker for every key whose TTL ran out, at one new revision (rolled back when
 * another reaper was first). Resolves how many keys expired.
 */
export async function reapExpired(client: pg.ClientBase, table: TableName): Promise<number> {
  const due = await client.query(
    `SELECT 1 FROM ${table.log} WHERE superseded_at IS NULL AND NOT deleted AND expires_at <= now() LIMIT 1`,
  )
  if (due.rowCount === 0) return 0
  await client.query('BEGIN')
  const locked = await client.query<{ revision: string }>(
    `UPDATE ${table.meta} SET revision = revision + 1 WHERE id = 1
     RETURNING revision, pg_notify($1, revision::text)`,
    [table.channel],
  )
  const result = await client.query(
    `WITH gone AS (
       UPDATE ${table.log} SET superseded_at = $1
       WHERE superseded_at IS NULL AND NOT deleted AND expires_at <= now() RETURNING key
     )
     INSERT INTO ${table.log} (revision, key, deleted) SELECT $1, key, true FROM gone`,
    [locked.rows[0]?.revision],
  )
  await client.query(result.rowCount === 0 ? 'ROLLBACK' : 'COMMIT')
  return result.rowCount ?? 0
}

/**
 * Removes the history up to `to`: rows replaced at or before it, and delete markers written at
 * or before it that are still current. Moves the compaction point (never back).
 */
export async function compactLog(
  client: pg.ClientBase,
  table: TableName,
  to: bigint | undefined,
): Promise<bigint> {
  await client.query('BEGIN')
  try {
    const meta = await client.query<{ revision: string }>(
      `SELECT revision FROM ${table.meta} WHERE id = 1`,
    )
    const head = BigInt(meta.rows[0]?.revision ?? 0)
    const target = to === undefined || to > head ? head : to
    await client.query(`DELETE FROM ${table.log} WHERE superseded_at <= $1`, [target.toString()])
    await client.query(
      `DELETE FROM ${table.log} WHERE superseded_at IS NULL AND deleted AND revision <= $1`,
      [target.toString()],
    )
    await client.query(
      `UPDATE ${table.meta} SET compacted = GREATEST(compacted, $1) WHERE id = 1`,
      [target.toString()],
    )
    await client.query('COMMIT')
    return target
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}
