import type { z } from 'zod'

/**
 * Unknown fields in a configuration value, found by walking the value beside its zod schema, so
 * every loader built on `parseConfig` reports a typo as what it is (`endpont` is an unknown field
 * on its own line, with "did you mean 'endpoint'?"), before the checks that would otherwise
 * report the correctly spelt field as missing.
 *
 * An object schema is closed (its unknown fields are errors) unless it is loose
 * (`z.looseObject`, `.passthrough()`, or a `catchall` other than `z.never()`): `z.object` and
 * `z.strictObject` are both closed here, since a configuration file's typo must never be
 * silently ignored.
 */

/** One unknown field: where it is, what the message says. */
export interface UnknownField {
  readonly path: readonly string[]
  readonly line: number | undefined
  readonly message: string
}

/** The parts of a zod schema's definition this walk reads. */
interface Def {
  readonly type: string
  readonly shape?: Readonly<Record<string, z.ZodType>>
  readonly catchall?: z.ZodType
  readonly innerType?: z.ZodType
  readonly in?: z.ZodType
  readonly element?: z.ZodType
  readonly options?: readonly z.ZodType[]
  readonly left?: z.ZodType
  readonly right?: z.ZodType
  readonly valueType?: z.ZodType
  readonly getter?: () => z.ZodType
}

function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def
}

const WRAPPERS = new Set(['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch'])

/** The schema under optional/default/transform wrappers. */
function unwrap(schema: z.ZodType): Def {
  let def = defOf(schema)
  for (let depth = 0; depth < 32; depth++) {
    if (WRAPPERS.has(def.type) || def.type === 'nonoptional') {
      if (def.innerType === undefined) return def
      def = defOf(def.innerType)
    } else if (def.type === 'pipe' && def.in !== undefined) def = defOf(def.in)
    else if (def.type === 'lazy' && def.getter !== undefined) def = defOf(def.getter())
    else return def
  }
  return def
}

/** The fields an object schema (or a union or intersection of them) knows, and if it is closed. */
interface Fields {
  readonly known: Map<string, z.ZodType>
  readonly closed: boolean
  readonly rest?: z.ZodType
}

function fieldsOf(def: Def): Fields | undefined {
  if (def.type === 'object') {
    const known = new Map(Object.entries(def.shape ?? {}))
    const catchall = def.catchall === undefined ? undefined : defOf(def.catchall)
    const closed = catchall === undefined || catchall.type === 'never'
    return {
      known,
      closed,
      ...(closed || def.catchall === undefined ? {} : { rest: def.catchall }),
    }
  }
  const parts =
    def.type === 'union'
      ? (def.options ?? [])
      : def.type === 'intersection' && def.left && def.right
        ? [def.left, def.right]
        : []
  const fields = parts.map((part) => fieldsOf(unwrap(part))).filter((f) => f !== undefined)
  if (fields.length === 0) return undefined
  const known = new Map<string, z.ZodType>()
  for (const part of fields)
    for (const [key, type] of part.known) if (!known.has(key)) known.set(key, type)
  return { known, closed: fields.every((part) => part.closed) }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Collects the unknown fields under `value`, with the names known where each one stands. */
function collect(
  value: unknown,
  schema: z.ZodType,
  path: readonly string[],
  out: { path: string[]; known: string[] }[],
): void {
  const def = unwrap(schema)
  if (Array.isArray(value)) {
    if (def.type === 'array' && def.element !== undefined) {
      value.forEach((item, index) => {
        collect(item, def.element as z.ZodType, [...path, String(index)], out)
      })
    }
    return
  }
  if (!isRecord(value)) return
  if (def.type === 'record' && def.valueType !== undefined) {
    for (const [key, item] of Object.entries(value))
      collect(item, def.valueType, [...path, key], out)
    return
  }
  const fields = fieldsOf(def)
  if (fields === undefined) return
  for (const [key, item] of Object.entries(value)) {
    const type = fields.known.get(key) ?? fields.rest
    if (type !== undefined) collect(item, type, [...path, key], out)
    else if (fields.closed) out.push({ path: [...path, key], known: [...fields.known.keys()] })
  }
}

/**
 * The first unknown field of `value` in document order (by `lineOf`), with its message; undefined
 * when every field is known.
 */
export function firstUnknownField(
  value: unknown,
  schema: z.ZodType,
  lineOf: (path: readonly string[]) => number | undefined,
): UnknownField | undefined {
  const found: { path: string[]; known: string[] }[] = []
  collect(value, schema, [], found)
  let first: UnknownField | undefined
  for (const { path, known } of found) {
    const line = lineOf(path)
    if (first === undefined || (line !== undefined && (first.line ?? Infinity) > line)) {
      first = { path, line, message: unknownFieldMessage(path.at(-1) ?? '', known) }
    }
  }
  return first
}

/**
 * The message for an unknown field `name` where `known` are the fields: "did you mean" the close
 * ones (a few edits apart, or the same name in another case or with `_` for `-`), else the list.
 */
export function unknownFieldMessage(name: string, known: readonly string[]): string {
  const close = closeNames(name, known)
  if (close.length > 0) {
    return `unknown field; did you mean ${close.map((field) => `'${field}'`).join(' or ')}?`
  }
  if (known.length > 0) {
    return `unknown field; the fields here are ${[...known].sort().join(', ')}`
  }
  return 'unknown field; check its spelling against the documented fields'
}

/** The known names closest to `name`, if within a few edits (at most three, equally close). */
export function closeNames(name: string, known: readonly string[]): string[] {
  const wanted = normalize(name)
  const scored = known
    .map((field) => ({ field, distance: editDistance(wanted, normalize(field)) }))
    .filter(({ field, distance }) => {
      const allowed = Math.max(1, Math.floor(Math.max(wanted.length, field.length) / 4))
      return distance <= allowed
    })
    .sort((a, b) => a.distance - b.distance || a.field.localeCompare(b.field))
  const best = scored[0]?.distance
  return scored
    .filter(({ distance }) => distance === best)
    .slice(0, 3)
    .map(({ field }) => field)
}

/** `dialTimeout`, `dial_timeout` and `Dial-Timeout` all read as `dial-timeout`. */
function normalize(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/_/g, '-')
    .toLowerCase()
}

/**
 * Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`: the optimal string
 * alignment distance. Field names are short, so the quadratic table is cheap; a dependency for
 * these few lines would cost every install more than it saves.
 */
function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  )
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] as number[]
    const above = rows[i - 1] as number[]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(
        (above[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (above[j - 1] as number) + cost,
      )
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, ((rows[i - 2] as number[])[j - 2] as number) + 1)
      }
      row[j] = best
    }
  }
  return (rows[a.length] as number[])[b.length] as number
}
