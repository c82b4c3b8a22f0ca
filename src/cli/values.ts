import type { Change, KeyValue } from '../core/events.js'
import { UsageError } from './errors.js'

/**
 * How values are shown and read:
 * - `text`: UTF-8 text (bytes that are not UTF-8 show as U+FFFD).
 * - `json`: the value parsed as JSON, embedded as JSON in `--json` output (a value that is not
 *   JSON is given as a string, with a warning on stderr); `put` checks its input is JSON.
 * - `base64`: the bytes in base64; `put` decodes its input from base64.
 */
export type Encoding = 'text' | 'json' | 'base64'

export const ENCODINGS: readonly Encoding[] = ['text', 'json', 'base64']

const decoder = new TextDecoder('utf-8')
const encoder = new TextEncoder()

/** Checks an `--encoding` value. */
export function parseEncoding(value: string | undefined): Encoding {
  if (value === undefined) return 'text'
  if ((ENCODINGS as readonly string[]).includes(value)) return value as Encoding
  throw new UsageError(`--encoding: expected text, json or base64, got '${value}'`)
}

/** Turns stored bytes into what the encoding shows, and reports values that are not JSON. */
export class ValueFormat {
  constructor(
    readonly encoding: Encoding,
    private readonly warn: (message: string) => void,
  ) {}

  /** The value as a JSON-ready value for `--json` output. */
  json(key: string, bytes: Uint8Array): unknown {
    switch (this.encoding) {
      case 'base64':
        return Buffer.from(bytes).toString('base64')
      case 'text':
        return decoder.decode(bytes)
      case 'json': {
        const text = decoder.decode(bytes)
        try {
          return JSON.parse(text) as unknown
        } catch {
          this.warn(`key '${key}': the value is not JSON; given as a string`)
          return text
        }
      }
    }
  }

  /** The value as a line of text: exact text, base64, or compact JSON. */
  text(key: string, bytes: Uint8Array): string {
    switch (this.encoding) {
      case 'base64':
        return Buffer.from(bytes).toString('base64')
      case 'text':
        return decoder.decode(bytes)
      case 'json': {
        const value = this.json(key, bytes)
        return typeof value === 'string' ? value : JSON.stringify(value)
      }
    }
  }

  /** The value inside a readable line: as it is when it is one printable line, else quoted. */
  inline(key: string, bytes: Uint8Array): string {
    const text = this.text(key, bytes)
    // eslint-disable-next-line no-control-regex
    return /[\u0000-\u001f\u007f]/.test(text) || text === '' ? JSON.stringify(text) : text
  }

  /** The bytes `put` stores for an input (an argument, or stdin's bytes) in this encoding. */
  static encode(encoding: Encoding, given: string | Uint8Array): Uint8Array {
    if (encoding === 'text') return typeof given === 'string' ? encoder.encode(given) : given
    const input = typeof given === 'string' ? given : decoder.decode(given)
    switch (encoding) {
      case 'base64': {
        const clean = input.replace(/\s+/g, '')
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || clean.length % 4 === 1) {
          throw new UsageError('the value is not valid base64 (--encoding base64)')
        }
        return new Uint8Array(Buffer.from(clean, 'base64'))
      }
      case 'json':
        try {
          JSON.parse(input)
        } catch (error) {
          throw new UsageError(
            `the value is not valid JSON (--encoding json): ${error instanceof Error ? error.message : String(error)}`,
          )
        }
        return encoder.encode(input)
    }
  }
}

/** One `--json` line of a key and its value. */
export function itemJson(format: ValueFormat, item: KeyValue<Uint8Array>): Record<string, unknown> {
  return {
    key: item.key,
    value: format.json(item.key, item.value),
    revision: String(item.revision),
  }
}

/** One `--json` line of a change: key, op, value (puts), prev (when known), revision. */
export function changeJson(
  format: ValueFormat,
  change: Change<Uint8Array>,
  reason: string,
): Record<string, unknown> {
  return {
    op: change.op,
    key: change.key,
    ...(change.op === 'put' ? { value: format.json(change.key, change.value) } : {}),
    ...(change.prev === undefined ? {} : { prev: format.json(change.key, change.prev) }),
    revision: String(change.revision),
    reason,
  }
}

/** One readable line of a change: `PUT key = value (was prev) @revision`. */
export function changeLine(format: ValueFormat, change: Change<Uint8Array>): string {
  const was = change.prev === undefined ? '' : ` (was ${format.inline(change.key, change.prev)})`
  return change.op === 'put'
    ? `PUT ${change.key} = ${format.inline(change.key, change.value)}${was} @${change.revision}`
    : `DELETE ${change.key}${was} @${change.revision}`
}
