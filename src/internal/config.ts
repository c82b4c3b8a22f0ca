import { readFile } from 'node:fs/promises'
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml'
import { z } from 'zod'
import { ConfigError } from '../core/errors.js'

/** Where a backend's configuration file may be named: a CLI flag and an environment variable. */
export interface ConfigLocation {
  /** The flag, e.g. `--etcd-config` (as `--etcd-config=path` or `--etcd-config path`). */
  readonly flag: string
  /** The environment variable, e.g. `ETCD_CONFIG`. */
  readonly env: string
}

/** Where the loader looks; the process's own argv and env by default. */
export interface ConfigLookup {
  readonly argv?: readonly string[]
  readonly env?: Readonly<Record<string, string | undefined>>
}

/**
 * The configuration file's path from the flag (first) or the environment variable, or undefined
 * when neither names one.
 *
 * @throws ConfigError when the flag is given without a path.
 */
export function configPath(
  location: ConfigLocation,
  lookup: ConfigLookup = {},
): string | undefined {
  const argv = lookup.argv ?? process.argv.slice(2)
  const env = lookup.env ?? process.env
  for (const [i, arg] of argv.entries()) {
    if (arg.startsWith(`${location.flag}=`))
      return nonEmpty(arg.slice(location.flag.length + 1), location.flag)
    if (arg === location.flag) return nonEmpty(argv[i + 1], location.flag)
  }
  const fromEnv = env[location.env]
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv
}

function nonEmpty(value: string | undefined, flag: string): string {
  if (value === undefined || value === '' || value.startsWith('--')) {
    throw new ConfigError(flag, undefined, 'expected a file path after the flag')
  }
  return value
}

/** A duration in a configuration file: `'250ms'`, `'10s'`, `'5m'`, `'1h'` or milliseconds. */
const DURATION_EXPECTED = "expected a duration such as '500ms', '10s' or '1m'"
export const durationField = z.union(
  [z.number().nonnegative(), z.string().regex(/^\d+(\.\d+)?(ms|s|m|h)$/, DURATION_EXPECTED)],
  { error: DURATION_EXPECTED },
) as z.ZodType<number | `${number}${'ms' | 's' | 'm' | 'h'}`>

/**
 * Reads and validates a YAML (or JSON) configuration file. Every error names the file, the line
 * and the field, and says what was expected, e.g.
 * `etcd.yaml:3: field 'dial-timeout': expected a duration such as '500ms', '10s' or '1m'`.
 * Unknown fields are errors (a typo must not be silently ignored).
 */
export async function loadConfigFile<S extends z.ZodType>(
  file: string,
  schema: S,
): Promise<z.infer<S>> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new ConfigError(
      file,
      undefined,
      code === 'ENOENT'
        ? 'the configuration file does not exist'
        : `cannot read the file (${code ?? String(error)})`,
      { cause: error },
    )
  }
  return parseConfig(text, file, schema)
}

/** Validates configuration text; `source` names it in errors (a file path, or `'options'`). */
export function parseConfig<S extends z.ZodType>(
  text: string,
  source: string,
  schema: S,
): z.infer<S> {
  const lineCounter = new LineCounter()
  const document = parseDocument(text, { lineCounter })
  const syntax = document.errors[0]
  if (syntax) {
    const line = lineCounter.linePos(syntax.pos[0]).line
    throw new ConfigError(
      at(source, line),
      undefined,
      `not valid YAML: ${syntax.message.split('\n')[0] ?? ''}`,
    )
  }
  const value: unknown = document.toJS() ?? {}
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issue = result.error.issues[0]
  if (issue === undefined) throw new ConfigError(source, undefined, 'invalid configuration')
  const path = issue.path.map(String)
  let message = issue.message
  if (issue.code === 'unrecognized_keys') {
    path.push(issue.keys[0] ?? '')
    message = 'unknown field; check its spelling against the documented fields'
  }
  const offset = fieldOffset(document, path)
  const line = offset === undefined ? undefined : lineCounter.linePos(offset).line
  throw new ConfigError(at(source, line), path.length === 0 ? undefined : path.join('.'), message)
}

/** Where a field starts in the document: its key (so a block value names the key's line). */
function fieldOffset(document: Document, path: readonly string[]): number | undefined {
  for (let depth = path.length; depth > 0; depth--) {
    const parent: unknown =
      depth === 1 ? document.contents : document.getIn(path.slice(0, depth - 1), true)
    const key = path[depth - 1]
    if (isMap(parent)) {
      const pair = parent.items.find((item) => isScalar(item.key) && String(item.key.value) === key)
      const range = (pair?.key as Node | undefined)?.range
      if (range) return range[0]
    } else if (isSeq(parent)) {
      const range = (parent.items[Number(key)] as Node | undefined)?.range
      if (range) return range[0]
    }
  }
  return document.contents?.range?.[0]
}

function at(source: string, line: number | undefined): string {
  return line === undefined ? source : `${source}:${line}`
}
