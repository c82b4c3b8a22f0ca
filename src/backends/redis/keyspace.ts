import { ConfigError, describe } from '../../core/errors.js'
import { toDatasyncError } from './errors.js'

/**
 * The keyspace-notification classes the watch needs: `K` (keyspace channels), `g` (del, rename,
 * ...), `$` (set and other string writes), `x` (expired), `e` (evicted).
 */
export const REQUIRED_FLAGS = ['K', 'g', '$', 'x', 'e'] as const

/** What `A` stands for in `notify-keyspace-events` (Redis 7). */
const ALL_CLASSES = 'g$lshzxetd'

/** The required flags `current` lacks, in the order of {@link REQUIRED_FLAGS}. */
export function missingFlags(current: string): string[] {
  const expanded = current.replace('A', ALL_CLASSES)
  return REQUIRED_FLAGS.filter((flag) => !expanded.includes(flag))
}

/**
 * Event names that do not change a key's value: no read follows them. `keymiss` must be among
 * them (a server with the `m` class would answer every read of a missing key with another
 * keymiss event, forever).
 */
export const NON_WRITE_EVENTS: ReadonlySet<string> = new Set([
  'keymiss',
  'expire',
  'persist',
  'new',
])

/** Escapes Redis glob metacharacters, so a prefix matches itself only. */
export function escapeGlob(text: string): string {
  return text.replace(/[\\*?[\]]/g, '\\$&')
}

/** The SCAN/PSUBSCRIBE pattern of the keys under `prefix`. */
export function keyPattern(prefix: string): string {
  return `${escapeGlob(prefix)}*`
}

/**
 * The prefixes a watch subscribes to and scans: each once, and none inside another (a key must
 * match exactly one pattern, or its events would arrive twice). Sorted.
 */
export function normalizePrefixes(prefixes: readonly string[]): string[] {
  const sorted = [...new Set(prefixes)].sort((a, b) => a.length - b.length || (a < b ? -1 : 1))
  const kept: string[] = []
  for (const prefix of sorted) {
    if (kept.some((shorter) => prefix.startsWith(shorter))) continue
    kept.push(prefix)
  }
  return kept.sort()
}

/** The minimal surface of a connection the keyspace check needs. */
export interface ConfigConnection {
  config(subcommand: 'GET', parameter: string): Promise<unknown>
  config(subcommand: 'SET', parameter: string, value: string): Promise<unknown>
}

/**
 * Makes sure the server behind `connection` publishes the keyspace events the watch needs.
 * Reads `notify-keyspace-events`; adds the missing classes with CONFIG SET (`configure`), or
 * fails with a `ConfigError` naming them (`verify`); `assume` does nothing. `where` names the
 * server for messages; `changed` hears of a CONFIG SET done.
 */
export async function ensureKeyspaceEvents(
  connection: ConfigConnection,
  mode: 'configure' | 'verify' | 'assume',
  where: string,
  changed: (change: { server: string; before: string; after: string }) => void = () => undefined,
): Promise<void> {
  if (mode === 'assume') return
  let current: string
  try {
    const reply = await connection.config('GET', 'notify-keyspace-events')
    current = Array.isArray(reply) && typeof reply[1] === 'string' ? reply[1] : ''
  } catch (error) {
    throw refused(error, where, 'read', undefined)
  }
  const missing = missingFlags(current)
  if (missing.length === 0) return
  const wanted = `${current}${missing.join('')}`
  if (mode === 'verify') {
    throw new ConfigError(
      `redis ${where}`,
      'notify-keyspace-events',
      `the server publishes '${current}', the watch also needs the classes '${missing.join('')}'; set notify-keyspace-events to '${wanted}' (or 'KEA') on every node, or let the store set it (option keyspaceEvents: 'configure')`,
    )
  }
  try {
    await connection.config('SET', 'notify-keyspace-events', wanted)
  } catch (error) {
    throw refused(error, where, 'set', missing)
  }
  changed({ server: where, before: current, after: wanted })
}

function refused(
  error: unknown,
  where: string,
  action: 'read' | 'set',
  missing: readonly string[] | undefined,
): Error {
  const mapped = toDatasyncError(error, `CONFIG on ${where}`).error
  // A lost connection stays retryable; a refused CONFIG command (renamed, NOPERM) is a
  // configuration problem.
  if (mapped.code === 'unavailable') return mapped
  return new ConfigError(
    `redis ${where}`,
    'notify-keyspace-events',
    `cannot ${action} it (${describe(error)})${missing ? `; the watch needs the classes '${missing.join('')}'` : ''}: allow CONFIG for this user, or set notify-keyspace-events to 'KEA' in the server configuration and the option keyspaceEvents to 'assume'`,
    { cause: error },
  )
}
