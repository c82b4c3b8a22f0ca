/**
 * Turns values of type `T` into a store's raw values (`R`, bytes by default) and back.
 * `decode` throws on a value it cannot read; the orchestrator reports that as a per-key
 * `CodecError` and keeps the key's last good value (P6). For a consumer registered with
 * `decode: 'lazy'`, `decode` runs at the value's first read instead, and that read throws the
 * `CodecError`: a codec must give the same answer whenever it is called.
 */
export interface Codec<T, R = Uint8Array> {
  /** A short name for messages: `bytes`, `string`, `json`, `proto:pkg.Msg`. */
  readonly name: string
  encode(value: T): R
  decode(raw: R): T
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** The identity codec over bytes. */
export function bytes(): Codec<Uint8Array> {
  return { name: 'bytes', encode: (value) => value, decode: (raw) => raw }
}

/** UTF-8 strings; decoding bytes that are not valid UTF-8 fails. */
export function string(): Codec<string> {
  return {
    name: 'string',
    encode: (value) => encoder.encode(value),
    decode: (raw) => decoder.decode(raw),
  }
}

/**
 * JSON as UTF-8 bytes. The type parameter is a promise the caller makes; pass `validate` to check
 * it (throw to reject a value, which then becomes a `CodecError` naming the key).
 *
 * @example
 * ```ts
 * import { json } from 'rx-datasync'
 * const route = json<{ via: string }>()
 * route.decode(route.encode({ via: '10.0.0.1' })).via // '10.0.0.1'
 * ```
 */
export function json<T>(validate?: (value: unknown) => T): Codec<T> {
  return {
    name: 'json',
    encode: (value) => {
      const text = JSON.stringify(value) as string | undefined
      if (text === undefined) throw new TypeError('the value has no JSON form')
      return encoder.encode(text)
    },
    decode: (raw) => {
      const value: unknown = JSON.parse(decoder.decode(raw))
      return validate ? validate(value) : (value as T)
    },
  }
}

/** The codec that passes values through unchanged (for stores that are already typed). */
export function identity<T>(): Codec<T, T> {
  return { name: 'identity', encode: (value) => value, decode: (raw) => raw }
}
