/**
 * The raw `pg` code of the benchmarks on the PostgreSQL store's table (no rx-datasync import: the
 * writer child loads it alone): the same SQL the store runs, written by hand, so that the ratio
 * is what the library adds (the orchestrator, Observables, decoding) over the same reads.
 */
import pg from 'pg'
import type { RawListing, RawWatcher } from './backend.js'

/** The store's default table, its meta table and its NOTIFY channel. */
export const TABLE = 'rx_datasync_kv'
const META = `${TABLE}_meta`
const CHANNEL = `${TABLE}_changes`
const LIVE = 'superseded_at IS NULL AND NOT deleted AND (expires_at IS NULL OR expires_at > now())'

/** A plain connected client to the server on loopback `port`. */
export async function rawPostgres(port: number): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' })
  client.on('error', () => undefined)
  await client.connect()
  return client
}

/** The first string after every string starting with `prefix` (ASCII prefixes here). */
function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)
}

/**
 * Writes `entries` as one transaction at one revision, the way the store does: the counter row
 * (its lock and the NOTIFY), the replaced rows superseded, the new rows appended (set-based).
 */
export async function rawPutMany(
  client: pg.Client,
  entries: readonly (readonly [string, string])[],
): Promise<void> {
  await client.query('BEGIN')
  try {
    const locked = await client.query<{ revision: string }>(
      `UPDATE ${META} SET revision = revision + 1 WHERE id = 1 RETURNING revision, pg_notify($1, revision::text)`,
      [CHANNEL],
    )
    const revision = locked.rows[0]?.revision
    const keys = entries.map(([key]) => key)
    await client.query(
      `UPDATE ${TABLE} SET superseded_at = $1 WHERE superseded_at IS NULL AND key = ANY($2::text[])`,
      [revision, keys],
    )
    await client.query(
      `INSERT INTO ${TABLE} (revision, key, deleted, value)
       SELECT $1, k, false, convert_to(v, 'UTF8') FROM unnest($2::text[], $3::text[]) AS e(k, v)`,
      [revision, keys, entries.map(([, value]) => value)],
    )
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}

/**
 * The raw resync: in one REPEATABLE READ transaction, each prefix's live rows in key order, in
 * pages of 5000 (keyset), every value JSON.parsed into a Map per prefix.
 */
export async function rawPostgresRead(
  client: pg.Client,
  prefixes: readonly string[],
): Promise<RawListing> {
  const listing: RawListing = []
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
  for (const prefix of prefixes) {
    const map = new Map<string, unknown>()
    let after: string | null = null
    for (;;) {
      const page: pg.QueryResult<{ key: string; value: Buffer }> = await client.query<{
        key: string
        value: Buffer
      }>(
        `SELECT key, value FROM ${TABLE} WHERE ${LIVE} AND key >= $1 AND key < $2
           AND ($3::text IS NULL OR key > $3) ORDER BY key LIMIT 5000`,
        [prefix, prefixEnd(prefix), after],
      )
      for (const row of page.rows) map.set(row.key, JSON.parse(row.value.toString()))
      if (page.rows.length < 5000) break
      after = page.rows.at(-1)?.key ?? null
    }
    listing.push(map)
  }
  await client.query('COMMIT')
  return listing
}

/**
 * A raw watcher: LISTEN on the store's channel, and on each notification the rows after the last
 * revision seen under `prefix` (puts only), each value JSON.parsed.
 */
export async function rawPostgresWatch(
  port: number,
  prefix: string,
  onPut: (key: string, value: unknown) => void,
): Promise<RawWatcher> {
  const listener = await rawPostgres(port)
  const reader = await rawPostgres(port)
  const head = await reader.query<{ revision: string }>(`SELECT revision FROM ${META}`)
  let last = head.rows[0]?.revision ?? '0'
  let reading = false
  let again = false
  const read = async (): Promise<void> => {
    if (reading) {
      again = true
      return
    }
    reading = true
    do {
      again = false
      const rows = await reader.query<{ revision: string; key: string; value: Buffer }>(
        `SELECT revision, key, value FROM ${TABLE}
         WHERE revision > $1 AND key >= $2 AND key < $3 AND NOT deleted ORDER BY revision, key`,
        [last, prefix, prefixEnd(prefix)],
      )
      for (const row of rows.rows) {
        last = row.revision
        onPut(row.key, JSON.parse(row.value.toString()))
      }
    } while (again)
    reading = false
  }
  listener.on('notification', () => {
    void read()
  })
  await listener.query(`LISTEN "${CHANNEL}"`)
  return {
    close: async () => {
      await listener.end().catch(() => undefined)
      await reader.end().catch(() => undefined)
    },
  }
}
