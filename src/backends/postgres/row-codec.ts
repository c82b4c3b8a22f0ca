import type { Codec } from '../../core/codec.js'

const decoder = new TextDecoder('utf-8', { fatal: true })
const encoder = new TextEncoder()

/**
 * The codec of a table source's values: a row as PostgreSQL's `to_jsonb` wrote it, parsed as
 * JSON, refusing a number a JavaScript number cannot hold exactly (a `bigint` or `numeric`
 * beyond 2^53, a `numeric` with more than 15 significant digits) instead of rounding it: the
 * error names the column, and the orchestrator's `CodecError` adds the key and the table (the
 * source's name). Cast such a column to text (a view, or a generated column) to read it.
 *
 * @example
 * ```ts
 * sync.register('users', { prefixes: ['users/'], codec: rowJson<{ id: number; name: string }>() })
 * ```
 */
export function rowJson<T = Record<string, unknown>>(): Codec<T> {
  return {
    name: 'row-json',
    encode: (value) => encoder.encode(JSON.stringify(value)),
    decode: (raw) => {
      const text = decoder.decode(raw)
      const problem = inexactNumber(text)
      if (problem !== undefined) {
        throw new RangeError(
          `column ${JSON.stringify(problem.column)} holds ${problem.number}, which a JavaScript number cannot hold exactly; cast the column to text (in a view or a generated column) to read it`,
        )
      }
      return JSON.parse(text) as T
    },
  }
}

/** The first number in JSON `text` that a double cannot hold exactly, with its field name. */
export function inexactNumber(text: string): { column: string; number: string } | undefined {
  let column = ''
  let i = 0
  while (i < text.length) {
    const char = text[i] ?? ''
    if (char === '"') {
      let end = i + 1
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1
      const literal = text.slice(i, end + 1)
      let next = end + 1
      while (text[next] === ' ') next++
      if (text[next] === ':') column = JSON.parse(literal) as string
      i = end + 1
    } else if (char === '-' || (char >= '0' && char <= '9')) {
      const match = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i))
      const number = match?.[0] ?? char
      if (!exact(number)) return { column, number }
      i += number.length
    } else i++
  }
  return undefined
}

function exact(number: string): boolean {
  if (/^-?\d+$/.test(number)) return Number.isSafeInteger(Number(number))
  const mantissa = number
    .replace(/^-/, '')
    .replace(/[eE].*$/, '')
    .replace('.', '')
  const significant = mantissa.replace(/^0+/, '').replace(/0+$/, '')
  return significant.length <= 15
}
