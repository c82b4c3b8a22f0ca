import { readFile } from 'node:fs/promises'
import { LineCounter, parseDocument } from 'yaml'
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
export const durationField = z.union([
  z.number().nonnegative(),
  z.string().regex(/^\d+(\.\d+)?(ms|s|m|h)$/, "expected a duration such as '500ms', '10s' or '1m'"),
]) as z.ZodType<number | `${number}${'ms' | 's' | 'm' | 'h'}`>

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
  const document = parseDocument(text, { lineCounter, prettyErrors: false })
  const syntax = document.errors[0]
  if (syntax) {
    const line = syntax.linePos?.[0].line
    throw new ConfigError(
      at(source, line),
      undefined,
      `not valid YAML: ${syntax.message.split('\n')[0]}`,
    )
  }
  const value: unknown = document.toJS() ?? {}
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issue = result.error.issues[0]
  if (issue === undefined) throw new ConfigError(source, undefined, 'invalid configuration')
  const path = issue.path.map(String)
  let field = path.join('.')
  let message = issue.message
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? ''
    path.push(key)
    field = [...issue.path.map(String), key].join('.')
    message = 'unknown field; check its spelling against the documented fields'
  }
  const node = document.getIn(path, true) as { range?: [number, number, number] } | undefined
  const parentNode = document.getIn(path.slice(0, -1), true) as
    { range?: [number, number, number] } | undefined
  const offset = node?.range?.[0] ?? parentNode?.range?.[0]
  const line = offset === undefined ? undefined : lineCounter.linePos(offset).line
  throw new ConfigError(at(source, line), field === '' ? undefined : field, message)
}

function at(source: string, line: number | undefined): string {
  return line === undefined ? source : `${source}:${line}`
}
