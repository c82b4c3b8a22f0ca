import { toMillis, type Duration } from '../core/duration.js'
import { ConfigError, DatasyncError } from '../core/errors.js'
import type { TxnCondition, TxnOp } from '../core/store.js'

/** A short description of a value a caller passed, for error messages. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'bigint') return `${value.toString()}n`
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (Array.isArray(value)) return 'an array'
  return `a value of type ${typeof value}`
}

/** A checked write of a transaction; `T` is the backend's form of a TTL. */
export type CheckedWrite<V, T = number> =
  | { readonly op: 'put'; readonly key: string; readonly value: V; readonly ttl?: T }
  | { readonly op: 'delete'; readonly key: string; readonly prefix: boolean }

/** How a backend differs in what it accepts. */
export interface CheckRules {
  /** The backend's name, first in every message. */
  readonly backend: string
  /** Why a non-empty key or a prefix cannot be used, if it cannot (Consul's URL paths). */
  readonly keyProblem?: (key: string) => string | undefined
  /** Values must be bytes (a server store) rather than anything but `undefined` (memory). */
  readonly bytesOnly?: boolean
}

/**
 * The argument checks every store makes at its public boundary, with messages that name the
 * backend, the operation and what was expected. Each throws a `TypeError` (a duplicate key in a
 * transaction: a `DatasyncError` with code `invalid-argument`, as etcd reports it).
 */
export interface ArgumentChecks {
  readonly key: (what: string, key: unknown) => asserts key is string
  readonly prefix: (what: string, prefix: unknown) => asserts prefix is string
  readonly prefixes: (prefixes: unknown) => asserts prefixes is readonly string[]
  readonly value: (what: string, key: string, value: unknown) => void
  /** A TTL in milliseconds, positive. */
  readonly ttlMs: (what: string, ttl: Duration) => number
  /** Checks a transaction's operations; `ttl` turns each put's TTL into the backend's form. */
  readonly writes: <V, T>(
    ops: readonly TxnOp<V>[],
    ttl: (what: string, ttl: Duration) => T,
  ) => CheckedWrite<V, T>[]
  readonly conditions: (conditions: readonly TxnCondition<unknown>[]) => void
}

/** The checks for one backend. Internal: never re-exported from the package. */
export function argumentChecks(rules: CheckRules): ArgumentChecks {
  const name = rules.backend
  const usable = (what: string, kind: 'key' | 'prefix', key: string) => {
    const problem = rules.keyProblem?.(key)
    if (problem !== undefined) {
      throw new TypeError(`${name} ${what}: the ${kind} ${show(key)} cannot be used: ${problem}`)
    }
  }
  const checks: ArgumentChecks = {
    key: (what, key) => {
      if (typeof key !== 'string' || key === '') {
        throw new TypeError(
          `${name} ${what}: expected the key to be a non-empty string, got ${show(key)}`,
        )
      }
      usable(what, 'key', key)
    },
    prefix: (what, prefix) => {
      if (typeof prefix !== 'string') {
        throw new TypeError(
          `${name} ${what}: expected the prefix to be a string ('' for every key), got ${show(prefix)}`,
        )
      }
      usable(what, 'prefix', prefix)
    },
    prefixes: (prefixes) => {
      if (!Array.isArray(prefixes)) {
        throw new TypeError(`${name} watch: expected an array of prefixes, got ${show(prefixes)}`)
      }
      for (const prefix of prefixes) checks.prefix('watch', prefix)
    },
    value: (what, key, value) => {
      if (rules.bytesOnly === true ? !(value instanceof Uint8Array) : value === undefined) {
        throw new TypeError(
          rules.bytesOnly === true
            ? `${name} ${what}: expected the value of key ${show(key)} to be a Uint8Array (wrap the store with withCodec for other types), got ${show(value)}`
            : `${name} ${what}: expected a value for key ${show(key)}, got undefined`,
        )
      }
    },
    ttlMs: (what, ttl) => {
      const ms = toMillis(ttl, `${name} ${what}: ttl`)
      if (ms <= 0) {
        throw new TypeError(`${name} ${what}: ttl: expected a positive duration, got ${show(ttl)}`)
      }
      return ms
    },
    writes: <V, T>(
      ops: readonly TxnOp<V>[],
      ttl: (what: string, ttl: Duration) => T,
    ): CheckedWrite<V, T>[] => {
      if (!Array.isArray(ops)) {
        throw new TypeError(`${name} txn: expected an array of operations, got ${show(ops)}`)
      }
      const writes = ops.map((op: TxnOp<V>, index): CheckedWrite<V, T> => {
        const what = `txn operation ${index}`
        if (op.op === 'put') {
          checks.key(what, op.key)
          checks.value(what, op.key, op.value)
          return op.ttl === undefined
            ? { op: 'put', key: op.key, value: op.value }
            : { op: 'put', key: op.key, value: op.value, ttl: ttl(what, op.ttl) }
        }
        if ((op.op as unknown) === 'delete') {
          const prefix = op.prefix === true
          if (prefix) checks.prefix(what, op.key)
          else checks.key(what, op.key)
          return { op: 'delete', key: op.key, prefix }
        }
        throw new TypeError(
          `${name} ${what}: expected op to be 'put' or 'delete', got ${show((op as { op: unknown }).op)}`,
        )
      })
      noDuplicates(name, writes)
      return writes
    },
    conditions: (conditions) => {
      if (!Array.isArray(conditions)) {
        throw new TypeError(`${name} txn: expected an array of conditions, got ${show(conditions)}`)
      }
      conditions.forEach((condition: TxnCondition<unknown>, index) => {
        const what = `txn condition ${index}`
        checks.key(what, condition.key)
        if ('exists' in condition) {
          if (typeof condition.exists !== 'boolean') {
            throw new TypeError(
              `${name} ${what}: expected exists to be a boolean, got ${show(condition.exists)}`,
            )
          }
        } else if ('revision' in condition) {
          if (typeof condition.revision !== 'bigint' || condition.revision < 0n) {
            throw new TypeError(
              `${name} ${what}: expected revision to be a Revision (a non-negative bigint), got ${show(condition.revision)}`,
            )
          }
        } else if ('value' in condition) {
          checks.value(what, condition.key, condition.value)
        } else {
          throw new TypeError(
            `${name} ${what}: expected one of exists, value or revision, got none`,
          )
        }
      })
    },
  }
  return checks
}

/**
 * Refuses a transaction that writes one key twice, as etcd does: a key put twice, or put and
 * deleted (by key or by prefix). Overlapping deletes are allowed.
 */
export function noDuplicates(
  name: string,
  writes: readonly {
    readonly op: 'put' | 'delete'
    readonly key: string
    readonly prefix?: boolean
  }[],
): void {
  const puts = new Set<string>()
  const deletes = writes.filter((write) => write.op === 'delete')
  for (const write of writes) {
    if (write.op !== 'put') continue
    const clash =
      puts.has(write.key) ||
      deletes.some((del) =>
        del.prefix === true ? write.key.startsWith(del.key) : write.key === del.key,
      )
    if (clash) {
      throw new DatasyncError(
        'invalid-argument',
        `${name} txn: duplicate key given in txn request: ${show(write.key)} is written more than once; put or delete each key at most once per transaction`,
      )
    }
    puts.add(write.key)
  }
}

/**
 * The field checks of a store's options object (`resolveOptions`), shared by the backends: each
 * failure is a `ConfigError` naming `source` (the options or the configuration file) and the
 * field.
 */
export interface OptionChecks {
  readonly fail: (field: string, message: string) => never
  /** A non-empty string, or `undefined` when the field is absent. */
  readonly text: (field: string, value: unknown) => string | undefined
  /** A duration in milliseconds (`fallback` when the field is absent). */
  readonly duration: (field: string, value: Duration | undefined, fallback: Duration) => number
  /** A duration in milliseconds, above zero. */
  readonly positive: (field: string, value: Duration | undefined, fallback: Duration) => number
}

/** The {@link OptionChecks} of one options object. Internal: never re-exported. */
export function optionChecks(source: string): OptionChecks {
  const fail = (field: string, message: string): never => {
    throw new ConfigError(source, field, message)
  }
  const duration = (field: string, value: Duration | undefined, fallback: Duration): number => {
    try {
      return toMillis(value ?? fallback, field)
    } catch (error) {
      return fail(field, error instanceof Error ? error.message : String(error))
    }
  }
  return {
    fail,
    text: (field, value) => {
      if (value === undefined) return undefined
      if (typeof value !== 'string' || value === '') {
        return fail(field, `expected a non-empty string, got ${JSON.stringify(value)}`)
      }
      return value
    },
    duration,
    positive: (field, value, fallback) => {
      const ms = duration(field, value, fallback)
      if (ms <= 0) fail(field, `expected a positive duration, got ${JSON.stringify(value)}`)
      return ms
    },
  }
}

/** A wrong value in a configuration file, as a loader reports it (zod's `addIssue`). */
export interface OptionIssue {
  /** The field's path in the file (YAML keys). */
  readonly path: (string | number)[]
  readonly message: string
}

/**
 * Runs a store's `resolveOptions` on options built from a configuration file (`resolve` gets the
 * source to name) and turns the `ConfigError` it throws into the file's issue: the YAML path of
 * the option's field, the message without its source prefix, and `(taken from VAR)` first when
 * `fromEnv` says the value came from an environment variable. `undefined` when nothing is wrong.
 */
export function optionIssue(
  resolve: (source: string) => unknown,
  yamlPath: Readonly<Record<string, readonly string[]>>,
  fromEnv: (field: string) => string | undefined = () => undefined,
): OptionIssue | undefined {
  const mark = '\u0000config-file'
  try {
    resolve(mark)
    return undefined
  } catch (error) {
    if (!(error instanceof ConfigError) || error.field === undefined) throw error
    const prefix = `${mark}: field '${error.field}': `
    const message = error.message.startsWith(prefix)
      ? error.message.slice(prefix.length)
      : error.message
    const variable = fromEnv(error.field)
    return {
      path: [...(yamlPath[error.field] ?? [])],
      message: variable === undefined ? message : `(taken from ${variable}) ${message}`,
    }
  }
}
