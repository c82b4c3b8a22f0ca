import type { IncomingMessage, ServerResponse } from 'node:http'
import { DatasyncError, CapabilityError } from '../../core/errors.js'
import { matchesAny } from '../../core/snapshot.js'
import type { WireError } from '../wire.js'
import type { ServerSettings } from './options.js'

/** A request refused with an HTTP status and a JSON error naming the problem. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: WireError['code'],
    message: string,
    readonly key?: string,
    readonly extra: Readonly<Record<string, string>> = {},
  ) {
    super(message)
  }
}

/** What one request may read and write (its token's grant within the served prefixes). */
export interface Access {
  /** The token's name in messages (never the token itself). */
  readonly who: string
  canRead(key: string): boolean
  canWrite(key: string): boolean
  /** Throws 403 naming the key (or prefix) when it may not be read. */
  assertRead(key: string, kind?: 'key' | 'prefix'): void
  /** Throws 403 naming the key (or prefix) when it may not be written. */
  assertWrite(key: string, kind?: 'key' | 'prefix'): void
}

/**
 * The access of a request from its `Authorization: Bearer <token>` header. Without configured
 * tokens everyone may read and write everything served.
 *
 * @throws HttpError 401 when tokens are configured and the request has none or an unknown one.
 */
export function accessOf(request: IncomingMessage, settings: ServerSettings): Access {
  const served = settings.prefixes
  if (settings.tokens === undefined) {
    return cached(settings, () => makeAccess('anonymous', served, served, served))
  }
  const header = request.headers.authorization
  const token = header === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1]
  if (token === undefined) {
    throw new HttpError(
      401,
      'unauthorized',
      header === undefined
        ? 'no token: send the header Authorization: Bearer <token>'
        : 'the Authorization header is not "Bearer <token>"',
    )
  }
  const grant = settings.tokens.get(token)
  if (grant === undefined) throw new HttpError(401, 'unauthorized', 'the token is not known')
  return cached(grant, () => makeAccess('the token', served, grant.read, grant.write))
}

/**
 * One access per token (per server without tokens), built once: a watch keeps its access for
 * as long as it runs, and a thousand watches with one token should not keep a thousand.
 */
const accesses = new WeakMap<object, Access>()

function cached(owner: object, make: () => Access): Access {
  let access = accesses.get(owner)
  if (access === undefined) {
    access = make()
    accesses.set(owner, access)
  }
  return access
}

function makeAccess(
  who: string,
  served: readonly string[],
  read: readonly string[],
  write: readonly string[],
): Access {
  const canRead = (key: string) => matchesAny(key, served) && matchesAny(key, read)
  const canWrite = (key: string) => matchesAny(key, served) && matchesAny(key, write)
  const refuse = (verb: string, kind: string, key: string, allowed: readonly string[]) => {
    const where =
      allowed.length === 0 ? 'no keys' : allowed.map((p) => JSON.stringify(p)).join(', ')
    return new HttpError(
      403,
      'forbidden',
      `${who} may not ${verb} the ${kind} ${JSON.stringify(key)} (it may ${verb} under ${where})`,
      key,
    )
  }
  return {
    who,
    canRead,
    canWrite,
    assertRead: (key, kind = 'key') => {
      if (!canRead(key)) throw refuse('read', kind, key, read)
    },
    assertWrite: (key, kind = 'key') => {
      if (!canWrite(key)) throw refuse('write', kind, key, write)
    },
  }
}

/**
 * Sets the CORS headers for an allowed `Origin`; answers a preflight (`OPTIONS`) itself and
 * returns true when it did.
 */
export function applyCors(
  request: IncomingMessage,
  response: ServerResponse,
  settings: ServerSettings,
): boolean {
  const cors = settings.cors
  const origin = request.headers.origin
  if (cors === undefined || origin === undefined) return false
  const allowed = cors.origins === '*' || cors.origins.includes(origin)
  if (!allowed) return false
  response.setHeader('access-control-allow-origin', cors.origins === '*' ? '*' : origin)
  if (cors.origins !== '*') response.setHeader('vary', 'Origin')
  if (request.method !== 'OPTIONS') return false
  response.writeHead(204, {
    'access-control-allow-methods': 'GET, PUT, POST, DELETE, OPTIONS',
    'access-control-allow-headers': 'authorization, content-type, last-event-id',
    'access-control-max-age': String(cors.maxAgeS),
  })
  response.end()
  return true
}

/** The HTTP status and JSON error of anything a handler threw. */
export function errorResponse(error: unknown): { status: number; body: WireError } {
  if (error instanceof HttpError) {
    return {
      status: error.status,
      body: {
        code: error.code,
        message: error.message,
        ...(error.key === undefined ? {} : { key: error.key }),
        ...error.extra,
      },
    }
  }
  if (error instanceof TypeError) {
    return { status: 400, body: { code: 'invalid-argument', message: error.message } }
  }
  if (error instanceof DatasyncError) {
    const status =
      error.code === 'invalid-argument'
        ? 400
        : error.code === 'capability'
          ? 501
          : error.code === 'conflict'
            ? 409
            : error.code === 'auth'
              ? 502
              : error.code === 'unavailable' || error.code === 'timeout' || error.code === 'closed'
                ? 503
                : 500
    const capability = error instanceof CapabilityError ? { capability: error.capability } : {}
    return { status, body: { code: error.code, message: error.message, ...capability } }
  }
  const message = error instanceof Error ? error.message : String(error)
  return { status: 500, body: { code: 'internal', message } }
}
