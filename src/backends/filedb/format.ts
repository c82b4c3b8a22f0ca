import { extname } from 'node:path'
import { CORE_SCHEMA, YAMLException, load } from 'js-yaml'
import { LineCounter, parseDocument, stringify } from 'yaml'
import { ConfigError, describe } from '../../core/errors.js'

/** The formats a data or status file may have, by extension. */
export type FileFormat = 'json' | 'yaml'

/** The format a path's extension says (`.json`, `.yaml`, `.yml`, any case), if any. */
export function formatOf(path: string): FileFormat | undefined {
  switch (extname(path).toLowerCase()) {
    case '.json':
      return 'json'
    case '.yaml':
    case '.yml':
      return 'yaml'
    default:
      return undefined
  }
}

/** One key's value as the store serves it. */
export interface DataEntry {
  /** The bytes the store serves: UTF-8 of `raw`. */
  readonly value: Uint8Array
  /** The JSON text of `value:` entries, or the string of `text:` entries; equal raws are equal values. */
  readonly raw: string
}

/** A data file's keys (first definition of each key) and the warnings it raised. */
export interface ParsedFile {
  readonly entries: ReadonlyMap<string, DataEntry>
  readonly warnings: readonly ConfigError[]
}

const encoder = new TextEncoder()
const ENTRY_FIELDS = new Set(['key', 'value', 'text'])

/**
 * Parses a data file: `{ data: [ { key, value } | { key, text } ] }` in JSON or YAML. An empty
 * file (or document) has no entries. A key given twice keeps its first definition and raises a
 * warning.
 *
 * @throws ConfigError naming the file, the line where known, and the field.
 */
export function parseDataFile(path: string, content: string): ParsedFile {
  const text = content.charCodeAt(0) === 0xfeff ? content.slice(1) : content
  const format = formatOf(path)
  if (format === undefined) {
    throw new ConfigError(
      path,
      undefined,
      'unsupported file type; a data file ends in .json, .yaml or .yml',
    )
  }
  if (text.trim() === '') return { entries: new Map(), warnings: [] }
  let document: unknown
  let locate: (at: readonly (string | number)[]) => number | undefined
  if (format === 'json') {
    try {
      document = JSON.parse(text)
    } catch (error) {
      throw new ConfigError(
        at(path, jsonErrorLine(text, error)),
        undefined,
        `not valid JSON: ${describe(error)}`,
      )
    }
    locate = (where) => locateIn(text, where)
  } else {
    document = HAS_ALIAS.test(text) ? loadWithAliases(path, text) : loadYaml(path, text)
    // Lines are looked up only for a message (a wrong entry, a key given twice).
    locate = (where) => locateIn(text, where)
  }
  return entriesOf(path, document, locate)
}

/**
 * An alias (`*name`) outside quoted text. js-yaml shares an aliased node instead of copying it
 * and has no limit on aliases, so a file that nests aliases (the "billion laughs") would cost
 * exponential time when its values are serialized: such files go through `yaml`, which caps
 * alias expansion. The test may match inside a quoted string too; that file then only takes the
 * slower path.
 */
const HAS_ALIAS = /(?:^|[\s[{,:-])\*[^\s,[\]{}]/m

/**
 * Parses YAML data with js-yaml 4 and its core schema (YAML 1.2: no timestamps or other
 * implicit types, as in JSON), duplicate keys refused. js-yaml is several times faster than
 * `yaml` on large files, and FileDB snapshots are dominated by parsing.
 *
 * @throws ConfigError naming the file and the line of js-yaml's mark.
 */
function loadYaml(path: string, text: string): unknown {
  try {
    return load(text, { schema: CORE_SCHEMA, filename: path })
  } catch (error) {
    if (!(error instanceof YAMLException)) throw error
    const line = typeof error.mark.line === 'number' ? error.mark.line + 1 : undefined
    throw new ConfigError(at(path, line), undefined, `not valid YAML: ${error.reason}`, {
      cause: error,
    })
  }
}

/** The `yaml` package's parse of a file with aliases: at most 100 alias expansions. */
function loadWithAliases(path: string, text: string): unknown {
  const lineCounter = new LineCounter()
  const parsed = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true })
  const syntax = parsed.errors[0]
  if (syntax) {
    throw new ConfigError(
      at(path, lineCounter.linePos(syntax.pos[0]).line),
      undefined,
      `not valid YAML: ${syntax.message.split('\n')[0] ?? syntax.code}`,
    )
  }
  try {
    return parsed.toJS({ maxAliasCount: 100 })
  } catch (error) {
    throw new ConfigError(path, undefined, `not valid YAML: ${describe(error)}`)
  }
}

function entriesOf(
  path: string,
  document: unknown,
  locate: (at: readonly (string | number)[]) => number | undefined,
): ParsedFile {
  const fail = (where: readonly (string | number)[], message: string): never => {
    throw new ConfigError(at(path, locate(where) ?? 1), fieldName(where), message)
  }
  if (document === null || document === undefined) return { entries: new Map(), warnings: [] }
  if (!isRecord(document)) {
    return fail(
      [],
      `expected a mapping with a 'data' list of { key, value } entries, got ${kind(document)}`,
    )
  }
  for (const field of Object.keys(document)) {
    if (field !== 'data') fail([field], "unknown field; a data file has only 'data'")
  }
  const data = document.data
  const entries = new Map<string, DataEntry>()
  const warnings: ConfigError[] = []
  if (data === null || data === undefined) return { entries, warnings }
  if (!Array.isArray(data))
    return fail(['data'], `expected a list of { key, value } entries, got ${kind(data)}`)
  data.forEach((item: unknown, index) => {
    const here = ['data', index]
    if (!isRecord(item)) return fail(here, `expected { key, value }, got ${kind(item)}`)
    for (const field of Object.keys(item)) {
      if (!ENTRY_FIELDS.has(field)) {
        fail([...here, field], "unknown field; an entry has 'key' and either 'value' or 'text'")
      }
    }
    const key = item.key
    if (typeof key !== 'string' || key === '') {
      return fail([...here, 'key'], `expected a non-empty string, got ${kind(key)}`)
    }
    const hasValue = 'value' in item
    const hasText = 'text' in item
    if (hasValue === hasText) {
      return fail(
        here,
        hasValue
          ? "give either 'value' or 'text', not both"
          : "expected 'value' (any JSON or YAML value) or 'text' (a string served as is)",
      )
    }
    let raw: string
    if (hasText) {
      if (typeof item.text !== 'string') {
        return fail([...here, 'text'], `expected a string, got ${kind(item.text)}`)
      }
      raw = item.text
    } else {
      const problem = notJson(item.value)
      if (problem !== undefined) return fail([...here, 'value'], problem)
      raw = JSON.stringify(item.value)
    }
    if (entries.has(key)) {
      warnings.push(
        new ConfigError(
          at(path, locate([...here, 'key'])),
          undefined,
          `key '${key}' is defined more than once in this file; the first definition is used`,
        ),
      )
      return undefined
    }
    entries.set(key, { value: encoder.encode(raw), raw })
    return undefined
  })
  return { entries, warnings }
}

/**
 * The text of a status file: pretty JSON for `.json`, YAML for `.yaml`/`.yml`.
 *
 * @throws TypeError when the state has no JSON form.
 */
export function encodeStatus(format: FileFormat, state: unknown): string {
  const problem = notJson(state)
  if (problem !== undefined) {
    throw new TypeError(`filedb publishStatus: expected a JSON-like state: ${problem}`)
  }
  return format === 'json' ? `${JSON.stringify(state, null, 2)}\n` : stringify(state)
}

/** Why a value has no faithful JSON form, or undefined when it has one. */
function notJson(value: unknown, seen = new Set<object>()): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined
    case 'number':
      return Number.isFinite(value) ? undefined : `${value} cannot be written in JSON`
    case 'object': {
      if (value === null) return undefined
      if (seen.has(value)) return 'the value contains a cycle'
      seen.add(value)
      const children = Array.isArray(value)
        ? value
        : isRecord(value)
          ? Object.values(value)
          : undefined
      if (children === undefined) return `${kind(value)} cannot be written in JSON`
      for (const child of children) {
        const problem = notJson(child, seen)
        if (problem !== undefined) return problem
      }
      seen.delete(value)
      return undefined
    }
    default:
      return `${kind(value)} cannot be written in JSON`
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value) as unknown
  return proto === Object.prototype || proto === null
}

function kind(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (value instanceof Date) return 'a date'
  if (typeof value === 'object')
    return isRecord(value) ? 'a mapping' : `a ${value.constructor.name}`
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (typeof value === 'bigint') return `${value.toString()}n`
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return `a ${typeof value}`
}

function fieldName(where: readonly (string | number)[]): string | undefined {
  if (where.length === 0) return undefined
  return where
    .map((part, index) =>
      typeof part === 'number' ? `[${part}]` : index === 0 ? part : `.${part}`,
    )
    .join('')
}

function at(path: string, line: number | undefined): string {
  return line === undefined ? path : `${path}:${line}`
}

/** The line of a `JSON.parse` error: from its "position N", or the last line at an early end. */
function jsonErrorLine(text: string, error: unknown): number | undefined {
  const message = describe(error)
  const position = /position (\d+)/.exec(message)
  const offset = position
    ? Number(position[1])
    : /end of JSON input/.test(message)
      ? text.length
      : undefined
  if (offset === undefined) return undefined
  let line = 1
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++
  return line
}

/**
 * The line of a node in JSON or YAML text, for messages; undefined when not found. It parses the
 * text again with `yaml` (which keeps every node's position), only when a message needs a line.
 */
function locateIn(text: string, where: readonly (string | number)[]): number | undefined {
  try {
    const lineCounter = new LineCounter()
    const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false })
    const node = document.getIn(where, true) as { range?: [number, number, number] } | undefined
    const offset = node?.range?.[0]
    return offset === undefined ? undefined : lineCounter.linePos(offset).line
  } catch {
    return undefined
  }
}
