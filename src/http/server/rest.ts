import type { IncomingMessage } from 'node:http'
import { firstValueFrom, lastValueFrom } from 'rxjs'
import type { Duration } from '../../core/duration.js'
import type { KvStore, TxnCondition, TxnOp } from '../../core/store.js'
import { decodeValue, parseRevision, toWireKeyValue } from '../wire.js'
import { HttpError, type Access } from './access.js'

/** Reads a JSON body of at most `limit` bytes. */
export async function readJson(request: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(request.headers['content-length'] ?? '0')
  if (declared > limit) throw tooLarge(limit)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw tooLarge(limit)
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '')
    throw new HttpError(400, 'invalid-argument', 'expected a JSON body, got nothing')
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    throw new HttpError(
      400,
      'invalid-argument',
      `malformed JSON body: ${error instanceof Error ? error.message : String(error)}`,
    )
  }
}

function tooLarge(limit: number): HttpError {
  return new HttpError(413, 'too-large', `the body is larger than maxBodyBytes (${limit} bytes)`)
}

/** A required query parameter. */
export function param(query: URLSearchParams, name: string): string {
  const value = query.get(name)
  if (value === null)
    throw new HttpError(400, 'invalid-argument', `missing query parameter '${name}'`)
  return value
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, 'invalid-argument', `${what}: expected a JSON object`)
  }
  return value as Record<string, unknown>
}

function ttlOf(value: unknown, what: string): Duration | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'number' || typeof value === 'string') return value as Duration
  throw new HttpError(
    400,
    'invalid-argument',
    `${what}: ttl: expected milliseconds or a duration like '10s'`,
  )
}

function stringField(body: Record<string, unknown>, name: string, what: string): string {
  const value = body[name]
  if (typeof value !== 'string') {
    throw new HttpError(400, 'invalid-argument', `${what}: '${name}': expected a string`)
  }
  return value
}

/** The REST operations on a store for one request's access. */
export function restOperations(store: KvStore, access: Access) {
  return {
    async get(key: string) {
      access.assertRead(key)
      const item = await lastValueFrom(store.get(key))
      return { item: item === undefined ? null : toWireKeyValue(item) }
    },
    async list(prefix: string) {
      const items = await lastValueFrom(store.list(prefix))
      return { items: items.filter((item) => access.canRead(item.key)).map(toWireKeyValue) }
    },
    // Asked at each request: a bucket or table made again behind a running server shows.
    async identity() {
      const identity = store.identity?.()
      return {
        identity:
          identity === undefined ? null : await firstValueFrom(identity, { defaultValue: null }),
      }
    },
    async listKeys(prefix: string) {
      const keys = await lastValueFrom(store.listKeys(prefix))
      return { keys: keys.filter((key) => access.canRead(key)) }
    },
    async put(key: string, raw: unknown) {
      access.assertWrite(key)
      const body = record(raw, `put '${key}'`)
      const value = decodeValue(body.value, `put '${key}'`)
      const ttl = ttlOf(body.ttl, `put '${key}'`)
      await lastValueFrom(store.put(key, value, ttl === undefined ? undefined : { ttl }), {
        defaultValue: undefined,
      })
      return {}
    },
    async delete(key: string, prefix: boolean) {
      access.assertWrite(key, prefix ? 'prefix' : 'key')
      return lastValueFrom(store.delete(key, { prefix }))
    },
    async txn(raw: unknown) {
      const body = record(raw, 'txn')
      if (!Array.isArray(body.ops))
        throw new HttpError(400, 'invalid-argument', "txn: 'ops': expected an array")
      const ops = body.ops.map((item: unknown, index): TxnOp<Uint8Array> => {
        const what = `txn ops[${index}]`
        const op = record(item, what)
        const key = stringField(op, 'key', what)
        if (op.op === 'put') {
          access.assertWrite(key)
          const ttl = ttlOf(op.ttl, what)
          const value = decodeValue(op.value, `${what} (key '${key}')`)
          return ttl === undefined ? { op: 'put', key, value } : { op: 'put', key, value, ttl }
        }
        if (op.op === 'delete') {
          const prefix = op.prefix === true
          access.assertWrite(key, prefix ? 'prefix' : 'key')
          return { op: 'delete', key, prefix }
        }
        throw new HttpError(400, 'invalid-argument', `${what}: 'op': expected 'put' or 'delete'`)
      })
      const rawConditions = body.conditions ?? []
      if (!Array.isArray(rawConditions)) {
        throw new HttpError(400, 'invalid-argument', "txn: 'conditions': expected an array")
      }
      const conditions = rawConditions.map((item: unknown, index): TxnCondition<Uint8Array> => {
        const what = `txn conditions[${index}]`
        const condition = record(item, what)
        const key = stringField(condition, 'key', what)
        access.assertRead(key)
        if (typeof condition.exists === 'boolean') return { key, exists: condition.exists }
        if ('revision' in condition)
          return { key, revision: parseRevision(condition.revision, what) }
        if ('value' in condition) return { key, value: decodeValue(condition.value, what) }
        throw new HttpError(
          400,
          'invalid-argument',
          `${what}: expected 'exists', 'value' or 'revision'`,
        )
      })
      const result = await lastValueFrom(store.txn(ops, { conditions }))
      return { succeeded: result.succeeded, revision: result.revision.toString() }
    },
  }
}
