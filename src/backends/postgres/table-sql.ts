import type pg from 'pg'
import type { StoreEvent } from '../../core/events.js'
import type { Change } from '../../core/events.js'
import { revision, type Revision } from '../../core/revision.js'
import { ConfigError } from '../../core/errors.js'
import { matchesAny } from '../../core/snapshot.js'
import { NAME } from './errors.js'
import type { LogRead } from './watch.js'

/** The shared change log of every table source, and its meta table (one row per source). */
export const ROWS = 'rx_datasync_rows'
export const ROWS_META = 'rx_datasync_rows_meta'
/** The channel every capture trigger notifies (the payload names the source). */
export const ROWS_CHANNEL = 'rx_datasync_rows'

/** A checked application table: `schema.name` quoted, and the source's name in the log. */
export interface SourceTable {
  /** `public.users` */
  readonly name: string
  /** `"public"."users"` */
  readonly quoted: string
  /** The trigger names, quoted. */
  readonly rowTrigger: string
  readonly truncateTrigger: string
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/

/** Checks `name` or `schema.name` (plain identifiers) and quotes it. */
export function sourceTable(value: unknown, fail: (message: string) => never): SourceTable {
  if (typeof value !== 'string') return fail(`expected a table name, got ${typeof value}`)
  const parts = value.split('.')
  if (parts.length > 2 || !parts.every((part) => IDENTIFIER.test(part))) {
    return fail(`expected a table name such as users or app.users, got ${JSON.stringify(value)}`)
  }
  const [schema, table] = parts.length === 2 ? parts : ['public', parts[0]]
  return {
    name: `${schema}.${table}`,
    quoted: `"${schema}"."${table}"`,
    rowTrigger: '"rx_datasync_capture"',
    truncateTrigger: '"rx_datasync_truncate"',
  }
}

/**
 * The shared objects: the log, its meta rows and the two trigger functions. The row trigger
 * allocates one revision per transaction and source (the first captured row takes the source's
 * meta row lock, so writers of a watched table serialize until commit and revisions commit in
 * order), remembered in a transaction-local setting; it appends the row's key, its old and new
 * values as jsonb. An update that changes the key is a delete of the old key and a put of the
 * new one. The truncate trigger appends a `truncate` marker: watchers relist.
 */
const SHARED = [
  `CREATE TABLE IF NOT EXISTS ${ROWS_META} (
    source text PRIMARY KEY, revision bigint NOT NULL, compacted bigint NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS ${ROWS} (
    source text NOT NULL, revision bigint NOT NULL, seq bigserial, op text NOT NULL,
    key text, old jsonb, new jsonb, PRIMARY KEY (source, revision, seq)
  )`,
  `CREATE OR REPLACE FUNCTION rx_datasync_revision(src text) RETURNS bigint LANGUAGE plpgsql AS $$
  DECLARE
    setting text := 'rx_datasync.rev_' || md5(src);
    rev bigint := nullif(current_setting(setting, true), '')::bigint;
  BEGIN
    IF rev IS NULL THEN
      UPDATE ${ROWS_META} SET revision = revision + 1 WHERE source = src RETURNING revision INTO rev;
      IF rev IS NULL THEN
        RAISE EXCEPTION 'rx-datasync: table source % has no meta row (uninstalled?)', src;
      END IF;
      PERFORM set_config(setting, rev::text, true);
      PERFORM pg_notify('${ROWS_CHANNEL}', src);
    END IF;
    RETURN rev;
  END $$`,
  `CREATE OR REPLACE FUNCTION rx_datasync_key(r jsonb, columns text[]) RETURNS text
  LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(replace(replace(r ->> c, '%', '%25'), '/', '%2F'), '/' ORDER BY n)
    FROM unnest(columns) WITH ORDINALITY AS k(c, n)
  $$`,
  `CREATE OR REPLACE FUNCTION rx_datasync_capture() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE
    src text := TG_ARGV[0];
    columns text[] := TG_ARGV[1:];
    rev bigint := rx_datasync_revision(src);
    old_key text;
    new_key text;
  BEGIN
    IF TG_OP <> 'INSERT' THEN old_key := rx_datasync_key(to_jsonb(OLD), columns); END IF;
    IF TG_OP <> 'DELETE' THEN new_key := rx_datasync_key(to_jsonb(NEW), columns); END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND old_key IS DISTINCT FROM new_key) THEN
      INSERT INTO ${ROWS} (source, revision, op, key, old) VALUES (src, rev, 'delete', old_key, to_jsonb(OLD));
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND old_key IS DISTINCT FROM new_key) THEN
      INSERT INTO ${ROWS} (source, revision, op, key, new) VALUES (src, rev, 'put', new_key, to_jsonb(NEW));
    ELSIF TG_OP = 'UPDATE' THEN
      INSERT INTO ${ROWS} (source, revision, op, key, old, new) VALUES (src, rev, 'put', new_key, to_jsonb(OLD), to_jsonb(NEW));
    END IF;
    RETURN NULL;
  END $$`,
  `CREATE OR REPLACE FUNCTION rx_datasync_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO ${ROWS} (source, revision, op) VALUES (TG_ARGV[0], rx_datasync_revision(TG_ARGV[0]), 'truncate');
    RETURN NULL;
  END $$`,
]

/** The primary key's columns of `table`, in key order; an error when it has none. */
export async function primaryKey(client: pg.ClientBase, table: SourceTable): Promise<string[]> {
  const result = await client.query<{ column: string }>(
    `SELECT a.attname AS column
     FROM pg_index i
     JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = $1::regclass AND i.indisprimary
     ORDER BY k.n`,
    [table.quoted],
  )
  if (result.rows.length === 0) {
    throw new ConfigError(
      `${NAME} table source ${table.name}`,
      'table',
      'the table has no primary key; give keyColumns, or add a primary key',
    )
  }
  return result.rows.map((row) => row.column)
}

/** Installs the shared objects and the triggers of one table, in one transaction. */
export async function installTriggers(
  client: pg.ClientBase,
  table: SourceTable,
  columns: readonly string[],
): Promise<void> {
  await client.query('BEGIN')
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', ['rx-datasync:rows'])
    for (const statement of SHARED) await client.query(statement)
    await client.query(
      `INSERT INTO ${ROWS_META} (source, revision, compacted) VALUES ($1, 0, 0) ON CONFLICT (source) DO NOTHING`,
      [table.name],
    )
    const args = [table.name, ...columns].map((arg) => `'${arg.replace(/'/g, "''")}'`).join(', ')
    await client.query(`DROP TRIGGER IF EXISTS ${table.rowTrigger} ON ${table.quoted}`)
    await client.query(`DROP TRIGGER IF EXISTS ${table.truncateTrigger} ON ${table.quoted}`)
    await client.query(
      `CREATE TRIGGER ${table.rowTrigger} AFTER INSERT OR UPDATE OR DELETE ON ${table.quoted}
       FOR EACH ROW EXECUTE FUNCTION rx_datasync_capture(${args})`,
    )
    await client.query(
      `CREATE TRIGGER ${table.truncateTrigger} AFTER TRUNCATE ON ${table.quoted}
       FOR EACH STATEMENT EXECUTE FUNCTION rx_datasync_truncated(${args})`,
    )
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}

/** Drops the table's triggers and its captured changes (the shared objects stay). */
export async function removeTriggers(client: pg.ClientBase, table: SourceTable): Promise<void> {
  await client.query('BEGIN')
  try {
    await client.query(`DROP TRIGGER IF EXISTS ${table.rowTrigger} ON ${table.quoted}`)
    await client.query(`DROP TRIGGER IF EXISTS ${table.truncateTrigger} ON ${table.quoted}`)
    const shared = await client.query<{ found: string | null }>('SELECT to_regclass($1) AS found', [
      ROWS_META,
    ])
    if (shared.rows[0]?.found != null) {
      await client.query(`DELETE FROM ${ROWS} WHERE source = $1`, [table.name])
      await client.query(`DELETE FROM ${ROWS_META} WHERE source = $1`, [table.name])
    }
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}

/** The source's meta row; a ConfigError when the triggers were never installed. */
export async function sourceMeta(
  client: pg.ClientBase,
  table: SourceTable,
): Promise<{ head: bigint; compacted: bigint }> {
  const installed = await client.query<{ found: string | null }>(
    'SELECT to_regclass($1) AS found',
    [ROWS_META],
  )
  const result =
    installed.rows[0]?.found === null
      ? undefined
      : await client.query<{ revision: string; compacted: string }>(
          `SELECT revision, compacted FROM ${ROWS_META} WHERE source = $1`,
          [table.name],
        )
  const row = result?.rows[0]
  if (row === undefined) {
    throw new ConfigError(
      `${NAME} table source ${table.name}`,
      undefined,
      'its triggers are not installed; call install() once (the library never installs them by itself)',
    )
  }
  return { head: BigInt(row.revision), compacted: BigInt(row.compacted) }
}

/** Every row of the table as [key, row JSON text], the key from `columns`. */
export async function readRows(
  client: pg.ClientBase,
  table: SourceTable,
  columns: readonly string[],
): Promise<{ key: string; row: string }[]> {
  const result = await client.query<{ key: string; row: string }>(
    `SELECT rx_datasync_key(j, $1::text[]) AS key, j::text AS row
     FROM (SELECT to_jsonb(t) AS j FROM ${table.quoted} t) s`,
    [[...columns]],
  )
  return result.rows
}

interface RowChange {
  head: string
  compacted: string
  revision: string | null
  op: string | null
  key: string | null
  old: string | null
  new: string | null
}

/**
 * The captured changes after `from` (at most `window` revisions) under `prefixes` (each key is
 * `keyPrefix` + the row's key), one event per revision, several changes of one key in one
 * transaction folded into one (its first old value, its last new value; inserted then deleted is
 * nothing). A truncate marker stops the read there (`rescan`).
 */
export async function readRowChanges(
  client: pg.ClientBase,
  table: SourceTable,
  keyPrefix: string,
  prefixes: readonly string[],
  from: bigint,
  window: number,
): Promise<LogRead> {
  const result = await client.query<RowChange>(
    `SELECT m.revision AS head, m.compacted, c.revision, c.op, c.key, c.old::text AS old, c.new::text AS new
     FROM ${ROWS_META} m
     LEFT JOIN LATERAL (
       SELECT revision, seq, op, key, old, new FROM ${ROWS} c
       WHERE c.source = m.source AND c.revision > $2 AND c.revision <= LEAST(m.revision, $2 + $3)
     ) c ON true
     WHERE m.source = $1
     ORDER BY c.revision, c.seq`,
    [table.name, from.toString(), window],
  )
  const first = result.rows[0]
  if (first === undefined) await sourceMeta(client, table)
  const events: StoreEvent<Uint8Array>[] = []
  let rescan: Revision | undefined
  let folding: { at: Revision; changes: Map<string, Folded> } | undefined
  const flush = () => {
    if (folding === undefined) return
    const { at, changes: folded } = folding
    const changes = [...folded.values()].flatMap((change) => changeOf(change, at))
    if (changes.length > 0) events.push({ type: 'changes', revision: at, changes })
    folding = undefined
  }
  for (const row of result.rows) {
    if (row.revision === null) continue
    const at = revision(row.revision)
    if (row.op === 'truncate') {
      flush()
      rescan = at
      break
    }
    if (folding?.at !== at) {
      flush()
      folding = { at, changes: new Map() }
    }
    const key = keyPrefix + (row.key ?? '')
    if (!matchesAny(key, prefixes)) continue
    const held = folding.changes.get(key)
    folding.changes.set(key, {
      key,
      old: held === undefined ? row.old : held.old,
      new: row.op === 'delete' ? null : row.new,
    })
  }
  flush()
  return {
    head: BigInt(first?.head ?? 0),
    compacted: BigInt(first?.compacted ?? 0),
    events,
    ...(rescan === undefined ? {} : { rescan }),
  }
}

interface Folded {
  key: string
  old: string | null
  new: string | null
}

const encoder = new TextEncoder()

function changeOf(folded: Folded, at: Revision): Change<Uint8Array>[] {
  const prev = folded.old === null ? undefined : encoder.encode(folded.old)
  if (folded.new !== null) {
    const value = encoder.encode(folded.new)
    return [
      prev === undefined
        ? { op: 'put', key: folded.key, value, revision: at }
        : { op: 'put', key: folded.key, value, prev, revision: at },
    ]
  }
  if (prev === undefined) return []
  return [{ op: 'delete', key: folded.key, prev, revision: at }]
}
