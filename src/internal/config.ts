import { readFile } from 'node:fs/promises'
import {
  LineCounter,
  isMap,
  isScalar,
  isSeq,
  parseDocument,
  type Document,
  type Node,
  type Scalar,
} from 'yaml'
import { z } from 'zod'
import { isDurationText, type Duration } from '../core/duration.js'
import { ConfigError } from '../core/errors.js'
import { firstUnknownField, unknownFieldMessage } from './config-fields.js'

/** Where a backend's configuration file may be named: a CLI flag and an environment variable. */
export interface ConfigLocation {
  /** The flag, e.g. `--etcd-config` (as `--etcd-config=path` or `--etcd-config path`). */
  readonly flag: string
  /** The environment variable, e.g. `ETCD_CONFIG`. */
  readonly env: string
}

/** Where the loader looks; the process's own argv and env by default. */
export interface ConfigLookup {
  /** Reads this file, ignoring the flag and the environment. @default none */
  readonly file?: string
  readonly argv?: readonly string[]
  readonly env?: Readonly<Record<string, string | undefined>>
  /**
   * Expand `${VAR}` and `${VAR:-default}` in the file's values from `env` (see
   * {@link ConfigReadOptions.expandEnv}). @default false
   */
  readonly expandEnv?: boolean
}

/**
 * How {@link parseConfig} and {@link loadConfigFile} read values. A {@link ConfigLookup} is one,
 * so a loader can pass its lookup on.
 */
export interface ConfigReadOptions {
  /**
   * Expand environment variables in values: `${VAR}` is the variable's value (an error naming the
   * file, line, field and variable when it is not set), `${VAR:-default}` the default when the
   * variable is unset or empty, and `$${` a literal `${`. Only values are expanded, never field
   * names, and an expanded value cannot add structure (a value holding `a: b` stays a string).
   * An unquoted value is read as YAML would read the expanded text (`port: ${PORT}` with
   * `PORT=2379` is the number 2379, `${TLS:-false}` the boolean false, an empty expansion null);
   * a quoted value stays a string: write `password: "${PASSWORD}"`. Inside a flow collection
   * (`[...]`, `{...}`) quote the references, since YAML reads `{` there as a mapping.
   *
   * @default false
   */
  readonly expandEnv?: boolean
  /** The variables `expandEnv` reads. @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>
}

/**
 * The configuration file's path: the lookup's `file`, else the flag (first) or the environment
 * variable; undefined when none names one.
 *
 * @throws ConfigError when the flag is given without a path.
 */
export function configPath(
  location: ConfigLocation,
  lookup: ConfigLookup = {},
): string | undefined {
  if (lookup.file !== undefined) return lookup.file
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

/**
 * A duration in a configuration file: milliseconds, or Go's `time.Duration` form (`'250ms'`,
 * `'10s'`, `'1m30s'`, `'1h2m3.5s'`, `'100us'`), since the files come from the Go original.
 */
const DURATION_EXPECTED = "expected a duration such as '500ms', '10s' or '1m'"
export const durationField = z.union(
  [z.number().nonnegative(), z.string().refine(isDurationText, DURATION_EXPECTED)],
  { error: DURATION_EXPECTED },
) as z.ZodType<Duration>

/**
 * Reads and validates a YAML (or JSON) configuration file. Every error names the file, the line
 * and the field, and says what was expected, e.g.
 * `etcd.yaml:3: field 'dial-timeout': expected a duration such as '500ms', '10s' or '1m'`.
 * Unknown fields are errors (a typo must not be silently ignored).
 */
export async function loadConfigFile<S extends z.ZodType>(
  file: string,
  schema: S,
  options: ConfigReadOptions = {},
): Promise<z.infer<S>> {
  return parseConfig(await readConfigText(file), file, schema, options)
}

/**
 * The text of a configuration file.
 *
 * @throws ConfigError naming the file when it does not exist or cannot be read.
 */
export async function readConfigText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
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
}

/**
 * Validates configuration text; `source` names it in errors (a file path, or `'options'`). With
 * `options.expandEnv`, environment variables in values are expanded first.
 */
export function parseConfig<S extends z.ZodType>(
  text: string,
  source: string,
  schema: S,
  options: ConfigReadOptions = {},
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
  if (options.expandEnv === true) {
    expandValues(document.contents, [], options.env ?? process.env, (scalar, path, message) => {
      const line = scalar.range ? lineCounter.linePos(scalar.range[0]).line : undefined
      return new ConfigError(
        at(source, line),
        path.length === 0 ? undefined : path.join('.'),
        message,
      )
    })
  }
  const value: unknown = document.toJS() ?? {}
  // Unknown fields first: a misspelt required field would otherwise be reported as the correct
  // field missing, at the top of the file, which points away from the typo.
  const unknown = firstUnknownField(value, schema, (path) => {
    const offset = fieldOffset(document, path)
    return offset === undefined ? undefined : lineCounter.linePos(offset).line
  })
  if (unknown !== undefined) {
    throw new ConfigError(at(source, unknown.line), unknown.path.join('.'), unknown.message)
  }
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issue = result.error.issues[0]
  if (issue === undefined) throw new ConfigError(source, undefined, 'invalid configuration')
  const path = issue.path.map(String)
  let message = issue.message
  if (issue.code === 'unrecognized_keys') {
    path.push(issue.keys[0] ?? '')
    message = unknownFieldMessage(issue.keys[0] ?? '', [])
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

/** One string expanded, or what is wrong with it. */
type Expansion = { readonly text: string } | { readonly error: string }

const REFERENCE = /\$\$\{|\$\{([^}]*)\}|\$\{/g
const VARIABLE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s

/** Expands `${VAR}`, `${VAR:-default}` and `$${` in one string. */
function expandText(text: string, env: Readonly<Record<string, string | undefined>>): Expansion {
  let error: string | undefined
  const result = text.replace(REFERENCE, (match: string, inner: string | undefined) => {
    if (match === '$${') return '${'
    if (error !== undefined) return match
    if (inner === undefined) {
      error = `'\${' without a closing '}'; write '$\${' for a literal '\${'`
      return match
    }
    const parsed = VARIABLE.exec(inner)
    const name = parsed?.[1]
    if (parsed === null || name === undefined) {
      error = `'\${${inner}}' is not a variable reference; expected \${NAME} or \${NAME:-default}`
      return match
    }
    const value = env[name]
    const fallback = parsed[2]
    if (fallback !== undefined) return value === undefined || value === '' ? fallback : value
    if (value === undefined) {
      error = `environment variable ${name} is not set; set it, or give a default with \${${name}:-default}`
      return match
    }
    return value
  })
  return error === undefined ? { text: result } : { error }
}

/**
 * Expands the string values under `node` in place (never the keys), in document order; the
 * first reference that cannot be expanded throws the error `fail` makes of it.
 */
function expandValues(
  node: unknown,
  path: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  fail: (scalar: Scalar, path: readonly string[], message: string) => Error,
): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key)
      expandValues(pair.value, [...path, key], env, fail)
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, index) => {
      expandValues(item, [...path, String(index)], env, fail)
    })
  } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('$')) {
    const expanded = expandText(node.value, env)
    if ('error' in expanded) throw fail(node, path, expanded.error)
    if (expanded.text !== node.value) {
      node.value = node.type === 'PLAIN' ? plainValue(expanded.text) : expanded.text
    }
  }
}

/** What YAML makes of `text` as an unquoted scalar: a number, boolean or null, else the text. */
function plainValue(text: string): unknown {
  if (text === '') return null
  if (text.includes('\n') || text.trim() !== text) return text
  const document = parseDocument(text)
  const contents = document.contents
  if (document.errors.length > 0 || !isScalar(contents)) return text
  return typeof contents.value === 'string' ? text : contents.value
}
