import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import { describe, expect, it } from 'vitest'
import { protoCodec, type ProtoCodec } from 'rx-datasync/proto'

const fixture = (name: string) =>
  fileURLToPath(new URL(`../fixtures/proto/${name}`, import.meta.url))
const root = protobuf.loadSync([fixture('types.proto'), fixture('other.proto')])
const typeOf = (name: string) => root.lookupType(name)
const types = (name: string) => typeOf(`fixture.types.v1.${name}`)

type Fields = Record<string, unknown>
const utf8 = (text: string) => new TextEncoder().encode(text)
const text = (raw: Uint8Array) => new TextDecoder().decode(raw)
const LongClass = protobuf.util.Long as unknown as {
  fromString(value: string, unsigned?: boolean): protobuf.Long
}
const long = (value: string, unsigned = false) => LongClass.fromString(value, unsigned)

/** The codec of both forms for one type. */
function codecs(name: string, options: { unknownFields?: 'reject' | 'keep' } = {}) {
  return {
    binary: protoCodec<Fields>(types(name), { ...options, form: 'binary' }),
    json: protoCodec<Fields>(types(name), { ...options, form: 'json' }),
  }
}

/** The canonical JSON a codec writes for `value`, parsed. */
const jsonOf = (codec: ProtoCodec<Fields>, value: Fields): unknown =>
  JSON.parse(text(codec.encode(value)))

/** What decoding throws. */
function decodeError(codec: ProtoCodec<Fields>, raw: Uint8Array): Error {
  try {
    codec.decode(raw)
  } catch (error) {
    if (error instanceof Error) return error
    throw new Error(`decode threw a non-error: ${String(error)}`)
  }
  throw new Error('decode did not fail')
}

function encodeError(codec: ProtoCodec<Fields>, value: unknown): Error {
  try {
    codec.encode(value as Fields)
  } catch (error) {
    if (error instanceof Error) return error
    throw new Error(`encode threw a non-error: ${String(error)}`)
  }
  throw new Error('encode did not fail')
}

/**
 * The round-trip matrix. `json` is the output protobuf's canonical JSON mapping prescribes
 * (https://protobuf.dev/programming-guides/json/), written by hand from the spec.
 */
const cases: readonly { name: string; type: string; value: Fields; json: unknown }[] = [
  {
    name: 'scalars: 64-bit integers as strings, 32-bit as numbers, bytes as base64',
    type: 'Scalars',
    value: {
      i32: -5,
      i64: long('-9007199254740993'),
      u32: 4294967295,
      u64: long('18446744073709551615', true),
      s32: -7,
      s64: long('-3'),
      f32: 7,
      f64: long('9', true),
      sf32: -9,
      sf64: long('-11'),
      flt: 0.25,
      dbl: 1.5,
      flag: true,
      text: 'héllo',
      data: new Uint8Array([0xfb, 0xff, 0x01]),
      displayName: 'eth0',
    },
    json: {
      i32: -5,
      i64: '-9007199254740993',
      u32: 4294967295,
      u64: '18446744073709551615',
      s32: -7,
      s64: '-3',
      f32: 7,
      f64: '9',
      sf32: -9,
      sf64: '-11',
      flt: 0.25,
      dbl: 1.5,
      flag: true,
      text: 'héllo',
      data: '+/8B',
      displayName: 'eth0',
    },
  },
  {
    name: 'scalars: default values left out, an explicitly present default kept, non-finite floats as strings',
    type: 'Scalars',
    value: { i32: 0, text: '', flag: false, maybe: 0, flt: NaN, dbl: -Infinity },
    json: { maybe: 0, flt: 'NaN', dbl: '-Infinity' },
  },
  {
    name: 'nested messages, recursive',
    type: 'Nested',
    value: {
      name: 'root',
      origin: { x: 1, y: -2 },
      child: { name: 'leaf', origin: {}, child: { name: 'deep' } },
    },
    json: {
      name: 'root',
      origin: { x: 1, y: -2 },
      child: { name: 'leaf', origin: {}, child: { name: 'deep' } },
    },
  },
  {
    name: 'repeated scalars, strings, messages, enums and 64-bit integers',
    type: 'Repeated',
    value: {
      numbers: [1, -2, 300],
      names: ['a', ''],
      points: [{ x: 1 }, {}],
      colors: [1, 2, 0],
      big: [long('9007199254740993'), long('-1')],
    },
    json: {
      numbers: [1, -2, 300],
      names: ['a', ''],
      points: [{ x: 1 }, {}],
      colors: ['COLOR_RED', 'COLOR_GREEN', 'COLOR_UNSPECIFIED'],
      big: ['9007199254740993', '-1'],
    },
  },
  {
    name: 'maps with string, 64-bit and bool keys and message values',
    type: 'Maps',
    value: {
      counts: { a: 1, b: 0 },
      namesById: { '-5': 'minus five', '9007199254740993': 'big' },
      points: { origin: { x: 0, y: 0 }, p: { x: 3 } },
      flags: { true: 1, false: 2 },
    },
    json: {
      counts: { a: 1, b: 0 },
      namesById: { '-5': 'minus five', '9007199254740993': 'big' },
      points: { origin: {}, p: { x: 3 } },
      flags: { true: 'COLOR_RED', false: 'COLOR_GREEN' },
    },
  },
  {
    name: 'oneof: a string member',
    type: 'Choice',
    value: { text: 'hi' },
    json: { text: 'hi' },
  },
  {
    name: 'oneof: a member set to its default is still written',
    type: 'Choice',
    value: { number: 0 },
    json: { number: '0' },
  },
  {
    name: 'oneof: a message member',
    type: 'Choice',
    value: { point: { y: 4 } },
    json: { point: { y: 4 } },
  },
  {
    name: 'enums by name, the zero value left out of a singular field',
    type: 'Enums',
    value: { color: 2, palette: [0, 1] },
    json: { color: 'COLOR_GREEN', palette: ['COLOR_UNSPECIFIED', 'COLOR_RED'] },
  },
  {
    name: 'well-known types',
    type: 'WellKnown',
    value: {
      at: { seconds: 1704164645, nanos: 123000000 },
      ttl: { seconds: 1, nanos: 500000000 },
      i64: { value: long('-42') },
      text: { value: '' },
      flag: { value: false },
      data: { value: new Uint8Array([1, 2, 3]) },
      dbl: { value: 2.5 },
      u32: { value: 7 },
      meta: {
        fields: {
          name: { stringValue: 'r1' },
          tags: {
            listValue: { values: [{ numberValue: 1 }, { boolValue: true }, { nullValue: 0 }] },
          },
          nested: { structValue: { fields: {} } },
        },
      },
      value: { nullValue: 0 },
      list: { values: [{ stringValue: 'x' }] },
      extra: {
        type_url: 'type.googleapis.com/fixture.types.v1.Point',
        value: types('Point').encode({ x: 5 }).finish(),
      },
      mask: { paths: ['display_name', 'origin.x'] },
      nothing: {},
    },
    json: {
      at: '2024-01-02T03:04:05.123Z',
      ttl: '1.500s',
      i64: '-42',
      text: '',
      flag: false,
      data: 'AQID',
      dbl: 2.5,
      u32: 7,
      meta: { name: 'r1', tags: [1, true, null], nested: {} },
      value: null,
      list: ['x'],
      extra: { '@type': 'type.googleapis.com/fixture.types.v1.Point', x: 5 },
      mask: 'displayName,origin.x',
      nothing: {},
    },
  },
  {
    name: 'well-known types: zero values of present messages, a timestamp without fraction, an Any holding a well-known type',
    type: 'WellKnown',
    value: {
      at: { seconds: 0 },
      ttl: {},
      i64: {},
      extra: {
        type_url: 'type.googleapis.com/google.protobuf.Duration',
        value: typeOf('google.protobuf.Duration').encode({ seconds: -2, nanos: -1000 }).finish(),
      },
    },
    json: {
      at: '1970-01-01T00:00:00Z',
      ttl: '0s',
      i64: '0',
      extra: { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '-2.000001s' },
    },
  },
]

describe('protoCodec round trips', () => {
  for (const { name, type, value, json } of cases) {
    describe(name, () => {
      const codec = codecs(type)

      it('JSON form: writes the canonical JSON mapping', () => {
        expect(jsonOf(codec.json, value)).toEqual(json)
      })

      it('JSON form: reads it back to the same message', () => {
        const decoded = codec.json.decode(utf8(JSON.stringify(json)))
        expect(codec.binary.encode(decoded)).toEqual(codec.binary.encode(value))
        expect(jsonOf(codec.json, decoded)).toEqual(json)
      })

      it('binary form: reads back the same message, bytes for bytes', () => {
        const bytes = codec.binary.encode(value)
        const decoded = codec.binary.decode(bytes)
        expect(codec.binary.encode(decoded)).toEqual(bytes)
        expect(jsonOf(codec.json, decoded)).toEqual(json)
      })
    })
  }

  it('gives the same shapes from either form: messages, Longs, bytes, decimal 64-bit map keys', () => {
    const { binary, json } = codecs('Maps')
    const value = { namesById: { '-5': 'neg' }, points: { p: { x: 1 } } }
    for (const decoded of [binary.decode(binary.encode(value)), json.decode(json.encode(value))]) {
      expect(decoded).toBeInstanceOf(types('Maps').ctor)
      expect(Object.keys(decoded.namesById as object)).toEqual(['-5'])
      expect((decoded.points as Record<string, unknown>).p).toBeInstanceOf(types('Point').ctor)
    }
    const scalars = codecs('Scalars')
    const input = { i64: long('-9007199254740993'), data: new Uint8Array([1, 2]) }
    for (const codec of [scalars.binary, scalars.json]) {
      const decoded = codec.decode(codec.encode(input))
      expect(String(decoded.i64)).toBe('-9007199254740993')
      expect(decoded.data).toEqual(new Uint8Array([1, 2]))
    }
  })

  it('sets the oneof case on decoded messages', () => {
    for (const codec of Object.values(codecs('Choice'))) {
      expect(codec.decode(codec.encode({ number: 0 })).kind).toBe('number')
    }
  })

  it('writes Timestamp and Duration fractions with 3, 6 or 9 digits and a Z offset', () => {
    const { json } = codecs('WellKnown')
    const at = (nanos: number) => jsonOf(json, { at: { seconds: 1, nanos } })
    expect(at(100_000_000)).toEqual({ at: '1970-01-01T00:00:01.100Z' })
    expect(at(1_000)).toEqual({ at: '1970-01-01T00:00:01.000001Z' })
    expect(at(1)).toEqual({ at: '1970-01-01T00:00:01.000000001Z' })
    expect(jsonOf(json, { ttl: { seconds: -1, nanos: -500_000_000 } })).toEqual({ ttl: '-1.500s' })
    expect(jsonOf(json, { ttl: { seconds: 3 } })).toEqual({ ttl: '3s' })
  })

  it('reads the other spellings the JSON mapping accepts', () => {
    const scalars = codecs('Scalars').json
    const decoded = scalars.decode(
      utf8('{"display_name":"a","i64":12,"u64":"7","data":"-_8","flt":"Infinity"}'),
    )
    expect(jsonOf(scalars, decoded)).toEqual({
      i64: '12',
      u64: '7',
      data: '+/8=',
      flt: 'Infinity',
      displayName: 'a',
    })
    const wellKnown = codecs('WellKnown').json
    expect(
      jsonOf(wellKnown, wellKnown.decode(utf8('{"at":"2024-01-02T04:04:05+01:00","ttl":"1.5s"}'))),
    ).toEqual({ at: '2024-01-02T03:04:05Z', ttl: '1.500s' })
    const enums = codecs('Enums').json
    expect(jsonOf(enums, enums.decode(utf8('{"color":1}')))).toEqual({ color: 'COLOR_RED' })
  })

  it('names itself after the form and the type', () => {
    const { binary, json } = codecs('Point')
    expect(binary.name).toBe('proto:fixture.types.v1.Point')
    expect(json.name).toBe('proto-json:fixture.types.v1.Point')
    expect(binary.form).toBe('binary')
    expect(json.type).toBe(types('Point'))
  })

  it('works with types from a JSON descriptor and types built in code', () => {
    const fromDescriptor = protobuf.Root.fromJSON({
      nested: {
        demo: {
          nested: {
            Host: {
              fields: {
                name: { type: 'string', id: 1 },
                port: { type: 'uint32', id: 2 },
                tags: { rule: 'repeated', type: 'string', id: 3 },
              },
            },
          },
        },
      },
    }).lookupType('demo.Host')
    const built = new protobuf.Type('Pair')
      .add(new protobuf.Field('key', 1, 'string'))
      .add(new protobuf.Field('size', 2, 'int64'))
    new protobuf.Root().define('built').add(built)

    for (const form of ['binary', 'json'] as const) {
      const host = protoCodec<Fields>(fromDescriptor, { form })
      const value = { name: 'db', port: 5432, tags: ['a'] }
      expect(
        jsonOf(
          protoCodec<Fields>(fromDescriptor, { form: 'json' }),
          host.decode(host.encode(value)),
        ),
      ).toEqual(value)
      const pair = protoCodec<Fields>(built, { form })
      expect(String(pair.decode(pair.encode({ key: 'k', size: 3 })).size)).toBe('3')
    }
    expect(protoCodec(built).name).toBe('proto:built.Pair')
  })
})

describe('protoCodec: a value of the wrong message type', () => {
  const iface = protoCodec<Fields>(typeOf('fixture.other.v1.Interface'))
  const ifaceBytes = iface.encode({
    name: 'eth0',
    mtu: 1500,
    enabled: true,
    addresses: ['10.0.0.1/24'],
  })

  it('binary: names the fields that do not fit the type', () => {
    const error = decodeError(codecs('Point').binary, ifaceBytes)
    expect(error.message).toBe(
      'not a valid fixture.types.v1.Point (binary): ' +
        'x (field 1, int32) came as length-delimited; ' +
        'field 3 (varint) is not declared in fixture.types.v1.Point; ' +
        'field 4 (length-delimited) is not declared in fixture.types.v1.Point; ' +
        "is it a value of another message type? (use unknownFields: 'keep' to accept fields of a newer schema)",
    )
  })

  it('binary: finds unknown fields in nested messages, with their path', () => {
    const pointV2 = types('PointV2').encode({ x: 1, z: 3 }).finish()
    const nested = protobuf.Writer.create()
      .uint32((2 << 3) | 2)
      .bytes(pointV2)
      .finish()
    const error = decodeError(codecs('Nested').binary, nested)
    expect(error.message).toContain(
      'origin.field 3 (varint) is not declared in fixture.types.v1.Point',
    )
  })

  it('binary: lists at most three problems', () => {
    const error = decodeError(
      codecs('Choice').binary,
      codecs('Scalars').binary.encode(cases[0]!.value),
    )
    expect(error.message).toMatch(/; and \d+ more; is it a value of another message type\?/)
  })

  it('binary: reports bytes that are not protobuf at all', () => {
    const error = decodeError(codecs('Point').binary, utf8('{"x": 1, "y": 2}'))
    expect(error.message).toMatch(/^not a valid fixture\.types\.v1\.Point \(binary\): /)
    expect(error.cause).toBeInstanceOf(Error)
  })

  it('reports an enum number the schema does not list', () => {
    const bytes = protobuf.Writer.create().uint32(8).int32(7).finish()
    const { binary, json } = codecs('Enums')
    expect(decodeError(binary, bytes).message).toContain(
      'not a valid fixture.types.v1.Enums (binary): color: 7 is not a value of fixture.types.v1.Color;',
    )
    expect(decodeError(json, utf8('{"palette":[1,9]}')).message).toContain(
      'not a valid fixture.types.v1.Enums (JSON form): palette: 9 is not a value of fixture.types.v1.Color;',
    )
    expect(decodeError(json, utf8('{"color":"COLOR_BLUE"}')).message).toContain(
      'color: unknown enum value: "COLOR_BLUE"',
    )
    const keep = codecs('Enums', { unknownFields: 'keep' })
    expect(keep.binary.decode(bytes).color).toBe(7)
    // The JSON mapping writes a number the schema does not name as the number.
    expect(jsonOf(keep.json, keep.binary.decode(bytes))).toEqual({ color: 7 })
  })

  it('JSON form: names the member that is not a field', () => {
    const error = decodeError(codecs('Point').json, utf8('{"name":"eth0","mtu":1500}'))
    expect(error.message).toBe(
      'not a valid fixture.types.v1.Point (JSON form): fixture.types.v1.Point: unknown field: "name"',
    )
  })

  it('JSON form: reports text that is not JSON, and bytes that are not UTF-8', () => {
    const json = codecs('Point').json
    expect(decodeError(json, utf8('x: 1')).message).toMatch(
      /^not a valid fixture\.types\.v1\.Point \(JSON form\): .*JSON/,
    )
    expect(decodeError(json, new Uint8Array([0xff])).message).toMatch(
      /^not a valid fixture\.types\.v1\.Point \(JSON form\): /,
    )
    expect(decodeError(json, utf8('{"x":"one"}')).message).toContain('x: invalid integer: "one"')
  })

  it("unknownFields 'keep': accepts a newer schema and writes its fields back (binary)", () => {
    const newer = types('PointV2').encode({ x: 1, y: 2, z: 3, label: 'up' }).finish()
    const older = codecs('Point', { unknownFields: 'keep' }).binary
    const decoded = older.decode(newer)
    expect(decoded).toMatchObject({ x: 1, y: 2 })
    const rewritten = older.encode({ ...decoded, y: 5 })
    // A plain copy loses the kept fields; the decoded message itself keeps them.
    expect(types('PointV2').toObject(types('PointV2').decode(rewritten))).toEqual({ x: 1, y: 5 })
    decoded.y = 5
    expect(types('PointV2').toObject(types('PointV2').decode(older.encode(decoded)))).toEqual({
      x: 1,
      y: 5,
      z: 3,
      label: 'up',
    })
  })

  it("unknownFields 'keep': the JSON form drops what it cannot hold", () => {
    const older = codecs('Point', { unknownFields: 'keep' }).json
    const decoded = older.decode(utf8('{"x":1,"z":3,"label":"up"}'))
    expect(jsonOf(older, decoded)).toEqual({ x: 1 })
  })
})

describe('protoCodec: encode checks the message', () => {
  const { binary, json } = codecs('Nested')

  it('refuses a property the type does not declare, naming it and the fields', () => {
    for (const codec of [binary, json]) {
      expect(encodeError(codec, { nmae: 'x' })).toEqual(
        new TypeError(
          'fixture.types.v1.Nested: nmae: no such field in fixture.types.v1.Nested (its fields: name, origin, child)',
        ),
      )
    }
    expect(encodeError(binary, { child: { origin: { z: 1 } } }).message).toBe(
      'fixture.types.v1.Nested: child.origin.z: no such field in fixture.types.v1.Point (its fields: x, y)',
    )
    expect(encodeError(codecs('Repeated').binary, { points: [{}, { w: 1 }] }).message).toContain(
      'points[1].w: no such field',
    )
  })

  it('refuses a value of the wrong type, naming the field (Type.verify)', () => {
    expect(encodeError(binary, { origin: { x: 'one' } })).toEqual(
      new TypeError('fixture.types.v1.Nested: origin.x: integer expected'),
    )
    expect(encodeError(codecs('Enums').json, { color: 'COLOR_RED' }).message).toBe(
      'fixture.types.v1.Enums: color: enum value expected',
    )
  })

  it('refuses what is not a message object', () => {
    for (const value of [null, 'text', 3, [1]]) {
      expect(encodeError(binary, value)).toBeInstanceOf(TypeError)
    }
    expect(encodeError(binary, 'text').message).toBe(
      'fixture.types.v1.Nested: expected a message object, got string',
    )
  })

  it('takes a message made with fromObject (enum names, string integers, base64)', () => {
    const enums = codecs('Enums')
    const message = types('Enums').fromObject({ color: 'COLOR_RED', palette: ['COLOR_GREEN'] })
    expect(jsonOf(enums.json, message)).toEqual({ color: 'COLOR_RED', palette: ['COLOR_GREEN'] })
  })
})

describe('protoCodec: arguments', () => {
  it('refuses what is not a message type, and unknown options', () => {
    expect(() => protoCodec(JSON.parse('{}') as protobuf.Type)).toThrow(
      new TypeError(
        "protoCodec: expected a protobufjs message type (root.lookupType('pkg.Msg')), got an object (Object)",
      ),
    )
    expect(() => protoCodec(types('Point'), { form: 'yaml' as 'json' })).toThrow(
      `protoCodec: form: expected 'binary' or 'json', got "yaml"`,
    )
    expect(() => protoCodec(new protobuf.Type('Loose'))).toThrow(
      'protoCodec: the type Loose belongs to no protobuf.Root: add it to one (root.add(type)) before making its codec',
    )
    const unresolved = protobuf.parse(
      'syntax = "proto3"; package u; import "google/protobuf/timestamp.proto"; message M { google.protobuf.Timestamp at = 1; }',
    ).root
    expect(() => protoCodec(unresolved.lookupType('u.M'))).toThrow(
      "protoCodec: the schema of u.M does not resolve: no such Type or Enum 'google.protobuf.Timestamp' in Type .u.M",
    )
    expect(() => protoCodec(types('Point'), { unknownFields: 'drop' as 'keep' })).toThrow(
      `protoCodec: unknownFields: expected 'reject' or 'keep', got "drop"`,
    )
  })
})
