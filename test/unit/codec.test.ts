import { describe, expect, it } from 'vitest'
import { bytes, identity, json, string, type Codec } from '../../src/index.js'

const utf8 = (text: string) => new TextEncoder().encode(text)
const text = (raw: Uint8Array) => new TextDecoder().decode(raw)

describe('bytes', () => {
  it('is named bytes and passes bytes through both ways', () => {
    const codec = bytes()
    const raw = new Uint8Array([0, 1, 254, 255])
    expect(codec.name).toBe('bytes')
    expect(codec.encode(raw)).toBe(raw)
    expect(codec.decode(raw)).toBe(raw)
  })

  it('accepts bytes that are not UTF-8', () => {
    const raw = new Uint8Array([0xff, 0xfe, 0xc3])
    expect(Array.from(bytes().decode(raw))).toEqual([0xff, 0xfe, 0xc3])
  })

  it('passes empty bytes through', () => {
    expect(bytes().decode(new Uint8Array()).length).toBe(0)
  })
})

describe('string', () => {
  it('is named string', () => {
    expect(string().name).toBe('string')
  })

  it('encodes as UTF-8', () => {
    expect(Array.from(string().encode('é€'))).toEqual([0xc3, 0xa9, 0xe2, 0x82, 0xac])
    expect(string().encode('').length).toBe(0)
  })

  it('round-trips ASCII, multi-byte text, emoji and the empty string', () => {
    const codec = string()
    for (const value of ['hello', 'grüße 你好', '🙂 ok', '', 'line\nbreak\u0000nul']) {
      expect(codec.decode(codec.encode(value))).toBe(value)
    }
  })

  it('fails on bytes that are not valid UTF-8', () => {
    const codec = string()
    // A lone continuation byte, a truncated sequence, and an overlong encoding of '/'.
    for (const raw of [[0x80], [0x61, 0xc3], [0xc0, 0xaf], [0xff]]) {
      expect(() => codec.decode(new Uint8Array(raw))).toThrow(TypeError)
    }
  })

  it('keeps working after a failed decode (the decoder is not left mid-sequence)', () => {
    const codec = string()
    expect(() => codec.decode(new Uint8Array([0xe2, 0x82]))).toThrow()
    expect(codec.decode(utf8('ok'))).toBe('ok')
  })
})

describe('json', () => {
  interface Route {
    readonly via: string
    readonly metric: number
    readonly tags: readonly string[]
  }

  it('is named json', () => {
    expect(json().name).toBe('json')
  })

  it('encodes to UTF-8 JSON text', () => {
    const codec = json<Route>()
    const raw = codec.encode({ via: 'r€', metric: 1, tags: [] })
    expect(raw).toBeInstanceOf(Uint8Array)
    expect(JSON.parse(text(raw))).toEqual({ via: 'r€', metric: 1, tags: [] })
  })

  it('round-trips objects, arrays and scalars', () => {
    const route: Route = { via: '10.0.0.1', metric: 5, tags: ['a', 'b'] }
    expect(json<Route>().decode(json<Route>().encode(route))).toEqual(route)
    const any = json<unknown>()
    for (const value of [null, 0, -1.5, true, false, 'text', [], {}, [1, [2, { x: null }]]]) {
      expect(any.decode(any.encode(value))).toEqual(value)
    }
  })

  it('decodes JSON written by someone else', () => {
    expect(json<{ a: number[] }>().decode(utf8(' { "a" : [1, 2] } '))).toEqual({ a: [1, 2] })
  })

  it('fails to decode text that is not JSON', () => {
    expect(() => json().decode(utf8('{not json'))).toThrow(SyntaxError)
    expect(() => json().decode(utf8(''))).toThrow(SyntaxError)
  })

  it('fails to decode bytes that are not UTF-8', () => {
    expect(() => json().decode(new Uint8Array([0x22, 0xff, 0x22]))).toThrow(TypeError)
  })

  it('passes the parsed value to validate and returns what validate returns', () => {
    const seen: unknown[] = []
    const codec = json<number>((value) => {
      seen.push(value)
      if (typeof value !== 'number') throw new TypeError('expected a number')
      return value * 2
    })
    expect(codec.decode(utf8('21'))).toBe(42)
    expect(seen).toEqual([21])
  })

  it('fails when validate rejects the value, with validate’s error', () => {
    const rejection = new TypeError('expected a number')
    const codec = json<number>((value) => {
      if (typeof value !== 'number') throw rejection
      return value
    })
    expect(() => codec.decode(utf8('"21"'))).toThrow(rejection)
  })

  it('does not call validate when encoding', () => {
    let calls = 0
    const codec = json<number>((value) => {
      calls++
      return value as number
    })
    expect(text(codec.encode(3))).toBe('3')
    expect(calls).toBe(0)
  })

  it('fails to encode a value that has no JSON form', () => {
    const codec = json<unknown>()
    expect(() => codec.encode(undefined)).toThrow(TypeError)
    expect(() => codec.encode(undefined)).toThrow(/no JSON form/)
    expect(() => codec.encode(() => 1)).toThrow(/no JSON form/)
    expect(() => codec.encode(Symbol('s'))).toThrow(/no JSON form/)
  })

  it('fails to encode values JSON.stringify refuses', () => {
    const codec = json<unknown>()
    const cyclic: Record<string, unknown> = {}
    cyclic['self'] = cyclic
    expect(() => codec.encode(cyclic)).toThrow(TypeError)
    expect(() => codec.encode(10n)).toThrow(TypeError)
  })

  it('drops undefined object fields as JSON does', () => {
    const codec = json<{ a?: number | undefined; b: number }>()
    expect(codec.decode(codec.encode({ a: undefined, b: 1 }))).toEqual({ b: 1 })
  })
})

describe('identity', () => {
  it('is named identity and returns the very same value both ways', () => {
    const codec: Codec<{ n: number }, { n: number }> = identity<{ n: number }>()
    const value = { n: 1 }
    expect(codec.name).toBe('identity')
    expect(codec.encode(value)).toBe(value)
    expect(codec.decode(value)).toBe(value)
  })

  it('passes undefined and null through', () => {
    const codec = identity<unknown>()
    expect(codec.encode(undefined)).toBeUndefined()
    expect(codec.decode(null)).toBeNull()
  })
})
