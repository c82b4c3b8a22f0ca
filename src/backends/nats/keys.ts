import { compareKeys } from '../../internal/order.js'
import { argumentChecks, show, type ArgumentChecks } from '../../internal/checks.js'
import { NAME } from './errors.js'

export { show }

/**
 * The key mapping between the contract's keys (any string: `config/routes/r1`) and NATS KV keys
 * (`[-/_=.a-zA-Z0-9]`, `.` separating subject tokens):
 *
 * - each `/`-separated segment of a key becomes one subject token, so `a/b/c` is stored as the
 *   NATS key `a.b.c` (subject `$KV.<bucket>.a.b.c`) and a prefix that ends with `/` is the
 *   subject filter `a.b.>`: the server lists and watches only the keys under it;
 * - inside a segment, `A-Z a-z 0-9 _ -` stay as they are; every other character (`.` `=` `*`
 *   `>` a space, anything beyond ASCII) becomes `=` and two upper-case hex digits per UTF-8 byte
 *   (`a.b` is `a=2Eb`, `é` is `=C3=A9`);
 * - an empty segment (`a//b`, a leading or trailing `/`) is the token `=` alone.
 *
 * The mapping is reversible and keeps key order within a segment's plain characters; listings
 * are sorted by the contract's key order after decoding. A prefix that does not end with `/`
 * (`a/b`) is watched through the filter of its last whole segment (`a.>`) and the keys are
 * matched in the client.
 */
const PLAIN = /^[A-Za-z0-9_-]$/
const EMPTY_TOKEN = '='
const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

function encodeSegment(segment: string): string {
  if (segment === '') return EMPTY_TOKEN
  let out = ''
  for (const char of segment) {
    if (PLAIN.test(char)) {
      out += char
      continue
    }
    for (const byte of encoder.encode(char)) {
      out += `=${byte.toString(16).toUpperCase().padStart(2, '0')}`
    }
  }
  return out
}

function decodeToken(token: string): string {
  if (token === EMPTY_TOKEN) return ''
  if (!token.includes('=')) return token
  if (!/^(?:[A-Za-z0-9_-]|=[0-9A-F]{2})+$/.test(token)) return token
  const bytes: number[] = []
  let out = ''
  const flush = () => {
    if (bytes.length === 0) return
    out += decoder.decode(new Uint8Array(bytes))
    bytes.length = 0
  }
  try {
    for (let i = 0; i < token.length; i++) {
      const char = token.charAt(i)
      if (char === '=') {
        bytes.push(parseInt(token.slice(i + 1, i + 3), 16))
        i += 2
      } else {
        flush()
        out += char
      }
    }
    flush()
  } catch {
    // Not UTF-8: a key written by another tool; it is shown as it is stored.
    return token
  }
  return out
}

/** The NATS KV key of a contract key: `a/b c` is `a.b=20c`. */
export function encodeKey(key: string): string {
  return key.split('/').map(encodeSegment).join('.')
}

/**
 * The contract key of a NATS KV key. A key written by another tool that does not follow the
 * encoding (`a=b`) keeps the tokens it cannot decode as they are.
 */
export function decodeKey(natsKey: string): string {
  // The common case (no escapes, no empty segment) without splitting: a watch decodes every key.
  if (!natsKey.includes('=')) return natsKey.replaceAll('.', '/')
  return natsKey.split('.').map(decodeToken).join('/')
}

/** A subject filter (below the bucket's subject prefix) and whether it matches only the prefix. */
export interface KeyFilter {
  /** `a.b.>`, or `>` for everything. */
  readonly subject: string
  /** Every key the filter matches is under the prefix (it ends with `/`, or is empty). */
  readonly exact: boolean
}

/** The narrowest subject filter that holds every key under `prefix`. */
export function filterFor(prefix: string): KeyFilter {
  const segments = prefix.split('/')
  const last = segments.pop() ?? ''
  const tokens = segments.map(encodeSegment)
  return { subject: [...tokens, '>'].join('.'), exact: last === '' }
}

/**
 * The prefixes a watch needs, without the ones another covers, and their longest common prefix:
 * one subject filter holds them all (nats-server 2.9 takes one filter per consumer), so the
 * changes arrive in one stream order.
 */
export function watchRoot(prefixes: readonly string[]): {
  readonly root: string
  readonly prefixes: readonly string[]
} {
  const sorted = [...new Set(prefixes)].sort(compareKeys)
  const kept: string[] = []
  for (const prefix of sorted) {
    if (!kept.some((other) => prefix.startsWith(other))) kept.push(prefix)
  }
  let root = kept[0] ?? ''
  for (const prefix of kept) {
    let i = 0
    while (i < root.length && i < prefix.length && root[i] === prefix[i]) i++
    root = root.slice(0, i)
  }
  return { root, prefixes: kept }
}

/** Keys whose segments cannot be encoded (lone UTF-16 surrogates have no UTF-8 form). */
function keyProblem(key: string): string | undefined {
  return !/\p{Cs}/u.test(key)
    ? undefined
    : 'it holds a lone UTF-16 surrogate, which has no UTF-8 form for a NATS subject'
}

const check: ArgumentChecks = argumentChecks({ backend: NAME, keyProblem, bytesOnly: true })

/** @throws TypeError unless `key` is a non-empty string that can be encoded. */
export const assertKey: ArgumentChecks['key'] = check.key
/** @throws TypeError unless `prefix` is a string (`''` for every key). */
export const assertPrefix: ArgumentChecks['prefix'] = check.prefix
/** @throws TypeError unless `prefixes` is an array of valid prefixes. */
export const assertPrefixes: ArgumentChecks['prefixes'] = check.prefixes
/** @throws TypeError unless `value` is bytes. */
export const assertValue: (what: string, key: string, value: unknown) => void = check.value
/** The transaction checks (operations, conditions) with this backend's messages. */
export const checks: ArgumentChecks = check
