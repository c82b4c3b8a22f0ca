import type { Enum, Field, ReflectionObject, Type } from 'protobufjs'
import type { Codec } from '../core/codec.js'
import { protobuf, protojson } from './protobufjs.js'

/**
 * How a message is written in the store:
 * - `binary`: the protobuf wire format.
 * - `json`: protobuf's canonical JSON mapping (ProtoJSON) as UTF-8 text: field names in
 *   lowerCamelCase, 64-bit integers as strings, bytes as base64, enums by name, `Timestamp` as
 *   an RFC 3339 string, `Duration` as `'1.500s'`, wrappers as their bare value, `Struct`/`Value`
 *   as plain JSON, `Any` with `@type`, `FieldMask` as `'a,b.c'`; default values are left out.
 */
export type ProtoForm = 'binary' | 'json'

/** Options of {@link protoCodec} and {@link loadProtoCodec}. */
export interface ProtoCodecOptions {
  /**
   * How values are written in the store: the protobuf wire format or protobuf's canonical JSON
   * mapping (see {@link ProtoForm}). Choose it per store (with `withCodec`) or per consumer
   * (the `codec` option of `register`); every reader of a key must use the writer's form.
   *
   * @default 'binary'
   */
  readonly form?: ProtoForm
  /**
   * What a value carrying something the message type does not declare means:
   * - `reject`: it is not this message type. Decoding fails naming each unknown field (its number
   *   and wire type, or a declared field written with the wrong wire type), each enum number
   *   the schema does not list, and what `Type.verify` finds; for the JSON form, each unknown
   *   member or enum name too. Binary decoding of another message type's bytes often
   *   "succeeds" with garbage; this is what catches it.
   * - `keep`: it comes from a newer schema (a writer upgraded first). Binary values keep unknown
   *   fields on the message (protobufjs's `$unknowns`) and write them back when the message is
   *   encoded again; the JSON form cannot hold them, so it drops them.
   *
   * @default 'reject'
   */
  readonly unknownFields?: 'reject' | 'keep'
}

/**
 * A {@link Codec} between protobuf messages and store values, with the type and form it uses.
 *
 * Decoded values are protobufjs messages (instances of `type.ctor`), the same from either form:
 * enums as numbers, 64-bit integers as `Long`, bytes as `Uint8Array`, map fields as objects
 * (64-bit keys as decimal strings), `Timestamp` as `{ seconds, nanos }`, the set member of a
 * oneof named by its virtual property. `encode` takes such a message, or a plain object in the
 * same shape (what `Type.create` and `Type.encode` take; `Type.fromObject` converts enum names,
 * string integers and base64 first). It throws a `TypeError` naming the field for a property the
 * type does not declare or a value of the wrong type (`Type.verify`).
 */
export interface ProtoCodec<T extends object> extends Codec<T> {
  /** The message type: `root.lookupType('pkg.Msg')`, or the type of a JSON-descriptor module. */
  readonly type: Type
  /** How values are written in the store. */
  readonly form: ProtoForm
}

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

/** How many problems a decode error lists before it says "and N more". */
const MAX_PROBLEMS = 3

const WIRE_TYPES = [
  'varint',
  'fixed64',
  'length-delimited',
  'start-group',
  'end-group',
  'fixed32',
] as const

/**
 * A codec for one protobuf message type, in binary form or in protobuf's canonical JSON
 * mapping. `type` is a protobufjs reflected type: from `protobuf.load`/`loadSync` of .proto
 * files (or {@link loadProtoCodec}), from a JSON descriptor (`Root.fromJSON`, what
 * `pbjs -t json-module` generates), or built in code.
 *
 * A value that is not a valid message of the type fails to decode with an error that names the
 * type, the form and what is wrong; through `withCodec` or a consumer of `createDatasync` it
 * becomes a `CodecError` naming the key, and the stream goes on.
 *
 * @example
 * ```ts
 * import protobuf from 'protobufjs'
 * import { createDatasync, createMemoryStore } from 'rx-datasync'
 * import { protoCodec } from 'rx-datasync/proto'
 *
 * interface Route { prefix?: string; via?: string }
 * const root = protobuf.loadSync('routes.proto')
 * const route = protoCodec<Route>(root.lookupType('net.v1.Route'), { form: 'json' })
 * const sync = createDatasync(createMemoryStore())
 * sync.register('routes', { prefixes: ['config/routes/'], codec: route })
 * ```
 *
 * @throws TypeError when `type` is not a protobufjs message type of a `Root` whose references
 *   all resolve, or an option is not one of its values.
 */
export function protoCodec<T extends object = Record<string, unknown>>(
  type: Type,
  options: ProtoCodecOptions = {},
): ProtoCodec<T> {
  if (!(type instanceof protobuf.Type)) {
    throw new TypeError(
      `protoCodec: expected a protobufjs message type (root.lookupType('pkg.Msg')), got ${describeValue(type)}`,
    )
  }
  const form = options.form ?? 'binary'
  if (form !== 'binary' && form !== 'json') {
    throw new TypeError(
      `protoCodec: form: expected 'binary' or 'json', got ${JSON.stringify(form)}`,
    )
  }
  const unknownFields = options.unknownFields ?? 'reject'
  if (unknownFields !== 'reject' && unknownFields !== 'keep') {
    throw new TypeError(
      `protoCodec: unknownFields: expected 'reject' or 'keep', got ${JSON.stringify(unknownFields)}`,
    )
  }
  const typeName = nameOf(type)
  if (!(type.root instanceof protobuf.Root)) {
    throw new TypeError(
      `protoCodec: the type ${typeName} belongs to no protobuf.Root: add it to one (root.add(type)) before making its codec`,
    )
  }
  // Resolve every field once, so the reflection used below (resolvedType) is complete.
  try {
    type.root.resolveAll()
  } catch (error) {
    throw new TypeError(
      `protoCodec: the schema of ${typeName} does not resolve: ${messageOf(error)}`,
      {
        cause: error,
      },
    )
  }
  const strict = unknownFields === 'reject'
  const jsonOptions = { ignoreUnknownFields: !strict }

  /**
   * Decodes the wire format. Every value, whichever the form, ends up as protobufjs's binary
   * decoding shapes it, so a consumer reads the same shapes from either form.
   */
  const decodeWire = (bytes: Uint8Array, formName: string): T => {
    const reader = protobuf.Reader.create(bytes)
    // Kept in both modes: 'reject' reports them, 'keep' writes them back on the next encode.
    reader.discardUnknown = false
    let message: object
    try {
      message = type.decode(reader)
    } catch (error) {
      throw new Error(`not a valid ${typeName} (${formName}): ${messageOf(error)}`, {
        cause: error,
      })
    }
    const problems: string[] | undefined = strict ? [] : undefined
    normalize(type, message, '', problems)
    if (problems !== undefined && problems.length === 0) {
      const invalid = type.verify(message)
      if (invalid !== null) problems.push(invalid)
    }
    if (problems !== undefined && problems.length > 0) {
      throw new Error(
        `not a valid ${typeName} (${formName}): ${summarize(problems)}; is it a value of another message type? (use unknownFields: 'keep' to accept fields of a newer schema)`,
      )
    }
    return message as T
  }

  const decodeJson = (raw: Uint8Array): T => {
    let bytes: Uint8Array
    try {
      const message = protojson.fromJsonString(type, utf8Decoder.decode(raw), jsonOptions)
      // ProtoJSON parsing yields plain nested objects and numbers where binary decoding yields
      // messages and Longs: one trip through the wire format gives the same shapes as binary.
      bytes = plainBytes(type.encode(message).finish())
    } catch (error) {
      throw new Error(`not a valid ${typeName} (JSON form): ${messageOf(error)}`, {
        cause: error,
      })
    }
    return decodeWire(bytes, 'JSON form')
  }

  const check = (value: T): object => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new TypeError(`${typeName}: expected a message object, got ${describeValue(value)}`)
    }
    // A message decoded or created by protobufjs has only declared fields; a plain object may
    // carry a misspelt one, which encode would drop without a word.
    if (!(value instanceof type.ctor)) {
      const unknown = findUndeclaredProperty(type, value, '')
      if (unknown !== undefined) throw new TypeError(`${typeName}: ${unknown}`)
    }
    const invalid = type.verify(value)
    if (invalid !== null) throw new TypeError(`${typeName}: ${invalid}`)
    return value
  }

  return {
    name: `${form === 'binary' ? 'proto' : 'proto-json'}:${typeName}`,
    type,
    form,
    encode:
      form === 'binary'
        ? (value) => plainBytes(type.encode(check(value)).finish())
        : (value) => utf8Encoder.encode(protojson.toJsonString(type, check(value))),
    decode: form === 'binary' ? (raw) => decodeWire(raw, 'binary') : decodeJson,
  }
}

/** What the walk over a decoded message needs to know of its type. */
interface TypeInfo {
  /** Fields whose values are messages (singular, repeated or map values): walked into. */
  readonly messages: readonly Field[]
  /** Map fields with 64-bit integer keys, which protobufjs decodes to 8-character hashes. */
  readonly longKeys: readonly { readonly name: string; readonly unsigned: boolean }[]
  /** Fields whose values are enums (singular, repeated or map values): checked in 'reject' mode. */
  readonly enums: readonly Field[]
}

const typeInfoCache = new WeakMap<Type, TypeInfo>()
const LONG_KEY_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64'])

function typeInfo(type: Type): TypeInfo {
  let info = typeInfoCache.get(type)
  if (info === undefined) {
    const fields = type.fieldsArray.map((field) => field.resolve())
    info = {
      messages: fields.filter((field) => field.resolvedType instanceof protobuf.Type),
      enums: fields.filter((field) => field.resolvedType instanceof protobuf.Enum),
      longKeys: fields.flatMap((field) =>
        field instanceof protobuf.MapField && LONG_KEY_TYPES.has(field.keyType)
          ? [
              {
                name: field.name,
                unsigned: field.keyType === 'uint64' || field.keyType === 'fixed64',
              },
            ]
          : [],
      ),
    }
    typeInfoCache.set(type, info)
  }
  return info
}

/**
 * Walks a decoded message and every nested one: turns 64-bit map keys from protobufjs's hashes
 * into decimal strings (as ProtoJSON writes them; `encode` takes both), and, when `problems` is
 * given, lists the unknown fields protobufjs kept.
 */
function normalize(
  type: Type,
  message: object,
  path: string,
  problems: string[] | undefined,
): void {
  const fields = message as Record<string, unknown>
  const info = typeInfo(type)
  if (problems !== undefined) {
    const unknowns = (message as { $unknowns?: readonly Uint8Array[] }).$unknowns
    if (unknowns !== undefined) {
      for (const raw of unknowns) problems.push(describeUnknown(type, raw, path))
    }
    // Proto3 enums are open: protobufjs (and Type.verify) take any number. A number the
    // schema does not list is a newer schema's value, or garbage from another message type.
    for (const field of info.enums) {
      const value = fields[field.name]
      if (value === undefined || value === null) continue
      const values = field.map
        ? Object.values(value as Record<string, unknown>)
        : Array.isArray(value)
          ? (value as unknown[])
          : [value]
      const enumType = field.resolvedType as Enum
      for (const item of values) {
        if (typeof item === 'number' && enumType.valuesById[item] === undefined) {
          problems.push(`${path}${field.name}: ${item} is not a value of ${nameOf(enumType)}`)
          break
        }
      }
    }
  }
  for (const { name, unsigned } of info.longKeys) {
    const map = fields[name]
    if (map === null || typeof map !== 'object') continue
    const decimal: Record<string, unknown> = {}
    for (const [key, item] of Object.entries(map as Record<string, unknown>)) {
      const long = protobuf.util.longFromKey(key, unsigned)
      // A Long (from the long package) prints as a decimal; a number (no long package) too.
      decimal[
        typeof long === 'object' ? (long as { toString(): string }).toString() : String(long)
      ] = item
    }
    fields[name] = decimal
  }
  for (const field of info.messages) {
    const value = fields[field.name]
    if (value === null || typeof value !== 'object') continue
    const nested = field.resolvedType as Type
    const at = problems === undefined ? '' : `${path}${field.name}`
    if (field.map) {
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        if (typeof item === 'object' && item !== null) {
          normalize(nested, item, problems ? `${at}[${key}].` : '', problems)
        }
      }
    } else if (Array.isArray(value)) {
      value.forEach((item: unknown, index) => {
        if (typeof item === 'object' && item !== null) {
          normalize(nested, item, problems ? `${at}[${index}].` : '', problems)
        }
      })
    } else {
      normalize(nested, value, problems ? `${at}.` : '', problems)
    }
  }
}

/** What an unknown field kept by the decoder is: an undeclared number, or a wrong wire type. */
function describeUnknown(type: Type, raw: Uint8Array, path: string): string {
  const { fieldNumber, wireType } = readTag(raw)
  const wire = WIRE_TYPES[wireType] ?? `wire type ${wireType}`
  const declared = type.fieldsById[fieldNumber]
  if (declared === undefined) {
    return `${path}field ${fieldNumber} (${wire}) is not declared in ${nameOf(type)}`
  }
  return `${path}${declared.name} (field ${fieldNumber}, ${declared.type}) came as ${wire}`
}

/** The field number and wire type of the tag a raw field starts with (a varint). */
function readTag(raw: Uint8Array): { fieldNumber: number; wireType: number } {
  let tag = 0
  for (let i = 0, scale = 1; i < raw.length && i < 5; i++, scale *= 128) {
    const byte = raw[i] ?? 0
    tag += (byte & 0x7f) * scale
    if (byte < 0x80) break
  }
  return { fieldNumber: Math.floor(tag / 8), wireType: tag % 8 }
}

/** The first property of a plain object (or of a nested one) that its type does not declare. */
function findUndeclaredProperty(type: Type, value: object, path: string): string | undefined {
  for (const key of Object.keys(value)) {
    const field = type.fields[key]
    if (field === undefined) {
      const names = type.fieldsArray.map((f) => f.name).join(', ')
      return `${path}${key}: no such field in ${nameOf(type)} (its fields: ${names || 'none'})`
    }
    const nested = field.resolve().resolvedType
    const item: unknown = (value as Record<string, unknown>)[key]
    if (!(nested instanceof protobuf.Type) || typeof item !== 'object' || item === null) continue
    const items: [string, unknown][] = field.map
      ? Object.entries(item).map(([k, v]) => [`${path}${key}[${k}].`, v])
      : Array.isArray(item)
        ? item.map((v: unknown, i) => [`${path}${key}[${i}].`, v])
        : [[`${path}${key}.`, item]]
    for (const [at, element] of items) {
      if (typeof element !== 'object' || element === null || element instanceof nested.ctor) {
        continue
      }
      const found = findUndeclaredProperty(nested, element, at)
      if (found !== undefined) return found
    }
  }
  return undefined
}

function summarize(problems: readonly string[]): string {
  const shown = problems.slice(0, MAX_PROBLEMS).join('; ')
  const more = problems.length - MAX_PROBLEMS
  return more > 0 ? `${shown}; and ${more} more` : shown
}

/** `pkg.Msg`, without protobufjs's leading dot. */
function nameOf(type: ReflectionObject): string {
  return type.fullName.startsWith('.') ? type.fullName.slice(1) : type.fullName
}

/** A plain Uint8Array view of protobufjs's output (a Buffer under Node), compared as bytes. */
function plainBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** An error's message, without the leading dot protobufjs puts on type names. */
function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/^\./, '')
}

function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'no prototype'})`
  return typeof value
}
