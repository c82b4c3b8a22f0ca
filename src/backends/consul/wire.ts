import { DatasyncError } from '../../core/errors.js'
import { NAME } from './errors.js'

/** One key as Consul lists it (`GET /v1/kv/<key>`), its value decoded from base64. */
export interface RawEntry {
  readonly Key: string
  readonly ModifyIndex: number
  readonly Value: Uint8Array | null
}

/** A recursive listing and the index it was read at (`X-Consul-Index`). */
export interface Listing {
  readonly index: bigint
  readonly entries: readonly RawEntry[]
}

/** One operation of `PUT /v1/txn`, in Consul's JSON format (values in base64). */
export interface TxnOperation {
  readonly KV: {
    readonly Verb: string
    readonly Key: string
    readonly Value?: string
    readonly Index?: number
    readonly Session?: string
  }
}

/** What `PUT /v1/txn` answered: the results (200), or why it rolled back (409). */
export type TxnAnswer =
  | { readonly ok: true; readonly results: readonly { readonly KV?: TxnResultEntry }[] }
  | {
      readonly ok: false
      readonly errors: readonly { readonly OpIndex: number; readonly What: string }[]
    }

/** A key in a transaction's results (values are only returned by reads). */
export interface TxnResultEntry {
  readonly Key: string
  readonly ModifyIndex: number
  readonly CreateIndex: number
}

/** The HTTP response papi hands back with `includeResponse`. */
export interface RawResponse {
  readonly statusCode?: number
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly body?: unknown
}

/** A response and its decoded body, as papi resolves a call with `includeResponse`. */
export type Answer = readonly [RawResponse, unknown]

/** What papi resolved a call with, checked to be an {@link Answer}. */
export function answerOf(result: unknown): Answer {
  if (!Array.isArray(result) || !isObject(result[0])) {
    throw new DatasyncError('internal', `${NAME}: the consul client answered without its response`)
  }
  return [result[0] as RawResponse, result[1]]
}

/** The HTTP response an error of papi carries, if any (a 404, a 409 with a body). */
export function responseOf(error: unknown): RawResponse | undefined {
  const response = isObject(error) ? (error as { response?: unknown }).response : undefined
  return isObject(response) ? (response as RawResponse) : undefined
}

/** A recursive listing (`GET /v1/kv/<prefix>?recurse`); no body when no key is under the prefix. */
export function listingOf([response, body]: Answer): Listing {
  return {
    index: indexOf(response),
    entries: body === undefined ? [] : (body as RawEntry[]).map(entryOf),
  }
}

/** One key (`GET /v1/kv/<key>`), or undefined, and the index of the answer. */
export function entryAnswerOf([response, body]: Answer): {
  readonly index: bigint
  readonly entry: RawEntry | undefined
} {
  return {
    index: indexOf(response),
    entry: body === undefined ? undefined : entryOf(body as RawEntry),
  }
}

/** The keys of `GET /v1/kv/<prefix>?keys`, and the index of the answer. */
export function keysOf([response, body]: Answer): {
  readonly index: bigint
  readonly keys: readonly string[]
} {
  return {
    index: indexOf(response),
    keys: Array.isArray(body) ? (body as unknown[]).filter((k) => typeof k === 'string') : [],
  }
}

/** The results of `PUT /v1/txn`, or the errors it rolled back with (409, or `Errors` in a 200). */
export function txnAnswerOf([response, body]: Answer): TxnAnswer {
  const answer = (isObject(body) ? body : {}) as {
    Results?: { KV?: TxnResultEntry }[] | null
    Errors?: { OpIndex: number; What: string }[] | null
  }
  if (response.statusCode === 409 || (answer.Errors?.length ?? 0) > 0) {
    return { ok: false, errors: answer.Errors ?? [] }
  }
  return { ok: true, results: answer.Results ?? [] }
}

/** The ID of the session `PUT /v1/session/create` created. */
export function sessionIdOf([, body]: Answer): string {
  const id = isObject(body) ? (body as { ID?: unknown }).ID : undefined
  if (typeof id !== 'string') {
    throw new DatasyncError('internal', `${NAME}: session create answered no ID`)
  }
  return id
}

/** The raft leader's address, `''` when the cluster has none (`GET /v1/status/leader`). */
export function leaderOf([, body]: Answer): string {
  return typeof body === 'string' ? body : ''
}

/** Whether `value` is a non-null object. */
export function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null
}

/** The `X-Consul-Index` header as a bigint (Consul's indexes are uint64). */
function indexOf(response: RawResponse): bigint {
  const header = response.headers['x-consul-index']
  const raw = Array.isArray(header) ? header[0] : header
  if (raw === undefined || !/^\d+$/.test(raw)) {
    throw new DatasyncError('internal', `${NAME}: the answer carries no X-Consul-Index header`)
  }
  return BigInt(raw)
}

function entryOf(raw: RawEntry): RawEntry {
  if (typeof raw.Key !== 'string' || typeof raw.ModifyIndex !== 'number') {
    throw new DatasyncError('internal', `${NAME}: unexpected KV entry ${JSON.stringify(raw)}`)
  }
  return raw
}
