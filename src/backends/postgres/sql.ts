import type pg from 'pg'
import { ConfigError } from '../../core/errors.js'
import type { KeyValue } from '../../core/events.js'
import type { Revision } from '../../core/revision.js'
import { byKey } from '../../internal/order.js'
import { NAME } from './errors.js'
import type { TableName } from './options.js'
import { types } from './pg.js'

/** The schema version this code reads and writes (`<table>_meta.schema_version`). */
export const SCHEMA_VERSION = 1

/**
 * The schema (README.md, "The tables"): one log table of every write, and one meta row holding
 * the schema version, the revision counter and the compaction point.
 *
 * - A write appends one row per key at the revision of its transaction; the row it replaces
 *   gets `superseded_at` = that revision (so the current state is `superseded_at IS NULL`, at
 *   most one row per key by a unique partial index, and a change's previous value is the row
 *   superseded at its revision).
 * - A delete appends a row with `deleted` true (a delete marker).
 * - Keys are `text COLLATE "C"`: byte order, which is code point order.
 */
export function schemaStatements(table: TableName): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${table.meta} (
      id smallint PRIMARY KEY CHECK (id = 1),
      schema_version integer NOT NULL,
      revision bigint NOT NULL,
      compacted bigint NOT NULL
    )`,
    `CREATE TABLE IF NOT EXISTS ${table.log} (
      revision bigint NOT NULL,
      key text COLLATE "C" NOT NULL,
      deleted boolean NOT NULL,
      value bytea,
      expires_at timestamptz,
      superseded_at bigint,
      PRIMARY KEY (revision, key)
    )`,
    `CREATE UNIQUE INDEX IF NOT EXISTS "${table.bare}_current" ON ${table.log} (key) WHERE superseded_at IS NULL`,
    `CREATE INDEX IF NOT EXISTS "${table.bare}_superseded" ON ${table.log} (superseded_at) WHERE superseded_at IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS "${table.bare}_expiry" ON ${table.log} (expires_at) WHERE expires_at IS NOT NULL AND superseded_at IS NULL`,
    `INSERT INTO ${table.meta} (id, schema_version, revision, compacted) VALUES (1, ${SCHEMA_VERSION}, 0, 0) ON CONFLICT (id) DO NOTHING`,
  ]
}

/**
 * Creates the tables when missing (under an advisory lock, so two stores starting at once do
 * not race), then checks the schema version. A table of another version is refused, never
 * changed.
 */
export async function ensureSchema(client: pg.ClientBase, table: TableName): Promise<void> {
  const exists = await client.query<{ found: string | null }>('SELECT to_regclass($1) AS found', [
    table.meta,
  ])
  if (exists.rows[0]?.found === null) {
    await client.query('BEGIN')
    try {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
        `rx-datasync:${table.name}`,
      ])
      for (const statement of schemaStatements(table)) await client.query(statement)
      await client.query('COMMIT')
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw error
    }
  }
  const meta = await client.query<{ schema_version: number }>(
    `SELECT schema_version FROM ${table.meta} WHERE id = 1`,
  )
  const version = meta.rows[0]?.schema_version
  if (version !== SCHEMA_VERSION) {
    throw new ConfigError(
      `${NAME} table ${table.name}`,
      'table',
      version === undefined
        ? `${table.meta} has no meta row; it was not made by rx-datasync (choose another table)`
        : `schema version ${version}, this rx-datasync reads version ${SCHEMA_VERSION}; migrate it or choose another table`,
    )
  }
}

/** A key may be any non-empty string PostgreSQL text can hold (no U+0000). */
export function keyProblem(key: string): string | undefined {
  return key.includes('\u0000') ? 'PostgreSQL text cannot hold U+0000' : undefined
}

/** The first string after every string that starts with `prefix` (byte order), or null. */
export function prefixEnd(prefix: string): string | null {
  // Code points, not grapheme clusters: byte order (UTF-8) is code point order.
  const points = Array.from(prefix)
  while (points.length > 0) {
    const last = points.pop() ?? ''
    let code = (last.codePointAt(0) ?? 0) + 1
    if (code === 0xd800) code = 0xe000
    if (code <= 0x10ffff) return points.join('') + String.fromCodePoint(code)
  }
  return null
}

/** The prefixes without those another one covers, sorted. */
export function normalizePrefixes(prefixes: readonly string[]): string[] {
  const sorted = [...new Set(prefixes)].sort((a, b) =>
    Buffer.compare(Buffer.from(a), Buffer.from(b)),
  )
  const kept: string[] = []
  for (const prefix of sorted) {
    const last = kept.at(-1)
    if (last === undefined || !prefix.startsWith(last)) kept.push(prefix)
  }
  return kept
}

/** A key's current row is alive: not replaced, not a delete marker, not expired. */
export const LIVE =
  'superseded_at IS NULL AND NOT deleted AND (expires_at IS NULL OR expires_at > now())'

/** A bytea from `pg` as a Uint8Array over the same memory. */
export function bytesOf(raw: Buffer): Uint8Array {
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)
}

const BYTEA_OID = 17
const asText = (text: string): string => text
const byteaOf = types.getTypeParser(types.builtins.BYTEA, 'text') as (text: string) => Buffer
/** A bytea as bytes: PostgreSQL's hex output (`\\x0a1b…`, the default) directly, else by pg. */
const hexBytes = (text: string): Uint8Array =>
  bytesOf(text.startsWith('\\x') ? Buffer.from(text.slice(2), 'hex') : byteaOf(text))

/**
 * The type parsers of the hot reads (listings and the watch's log reads, with `rowMode: 'array'`):
 * bytea to bytes, every other column left as its text. pg's defaults run a regular expression on
 * each int8 only to hand back the same string, and build an object per row: at 100k rows both
 * show. The caller turns each column into what it needs (`BigInt` for a revision).
 */
export const RAW_TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number) =>
    oid === BYTEA_OID ? hexBytes : asText) as pg.CustomTypesConfig['getTypeParser'],
}

/** A revision column's text as a Revision (PostgreSQL wrote it: a bigint's digits). */
export function revisionOf(text: string): Revision {
  return BigInt(text) as Revision
}

/**
 * Puts key-values in the contract's key order (JavaScript's): rows come in byte order (keys are
 * `COLLATE "C"`), which differs only where keys mix characters at or above U+E000 with ones
 * beyond U+FFFF, so this is one pass over keys already in order.
 */
export function inKeyOrder(items: KeyValue<Uint8Array>[]): KeyValue<Uint8Array>[] {
  for (let i = 1; i < items.length; i++) {
    if ((items[i - 1] as KeyValue<Uint8Array>).key > (items[i] as KeyValue<Uint8Array>).key) {
      return items.sort(byKey)
    }
  }
  return items
}

/** Rows (`key`, `value`, `revision`) to key-values, in the contract's key order. */
export function keyValues(rows: readonly (readonly [string, Uint8Array, string])[]) {
  return inKeyOrder(rows.map(([key, value, at]) => ({ key, value, revision: revisionOf(at) })))
}

/**
 * Every live key under `prefix`, read in pages of `pageSize` keys (keyset paging on the key),
 * appended to `into` in byte order. Run it inside one REPEATABLE READ transaction for a listing
 * at one revision.
 */
export async function listPrefix(
  client: pg.ClientBase,
  table: TableName,
  prefix: string,
  pageSize: number,
  keysOnly = false,
  into: KeyValue<Uint8Array>[] = [],
): Promise<KeyValue<Uint8Array>[]> {
  const end = prefixEnd(prefix)
  let after: string | null = null
  for (;;) {
    const page: pg.QueryArrayResult<[string, Uint8Array, string]> = await client.query<
      [string, Uint8Array, string]
    >({
      text: `SELECT key, ${keysOnly ? "''::bytea AS value" : 'value'}, revision FROM ${table.log}
        WHERE ${LIVE} AND key >= $1 AND ($2::text IS NULL OR key < $2) AND ($3::text IS NULL OR key > $3)
        ORDER BY key LIMIT $4`,
      values: [prefix, end, after, pageSize],
      rowMode: 'array',
      types: RAW_TYPES,
    })
    for (const [key, value, at] of page.rows) into.push({ key, value, revision: revisionOf(at) })
    if (page.rows.length < pageSize) return into
    after = page.rows.at(-1)?.[0] ?? null
  }
}

/** The meta row: the current revision and the compaction point. */
export async function readMeta(
  client: pg.ClientBase,
  table: TableName,
): Promise<{ head: bigint; compacted: bigint }> {
  const result = await client.query<{ revision: string; compacted: string }>(
    `SELECT revision, compacted FROM ${table.meta} WHERE id = 1`,
  )
  const row = result.rows[0]
  if (row === undefined) throw new Error(`${table.meta} has no meta row`)
  return { head: BigInt(row.revision), compacted: BigInt(row.compacted) }
}
