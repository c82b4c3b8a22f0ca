import { Observable, throwError, timeout } from 'rxjs'
import {
  AuthError,
  CapabilityError,
  ConfigError,
  DatasyncError,
  UnavailableError,
  describe,
} from '../../core/errors.js'
import { forStore, inOperation, type ErrorMapper } from '../../internal/errors.js'
import type { WireError } from '../wire.js'
import { NAME, type ClientSettings, type FetchResponse } from './options.js'

/** An answer of the server with an error status, and its JSON error when it sent one. */
export class HttpFailure extends Error {
  constructor(
    readonly status: number,
    readonly error: WireError,
  ) {
    super(`HTTP ${status}: ${error.message}`)
  }
}

/** The JSON error of a failed response (or one made from its status). */
export async function failureOf(response: FetchResponse): Promise<HttpFailure> {
  const text = await response.text().catch(() => '')
  try {
    const parsed = JSON.parse(text) as { error?: WireError }
    if (parsed.error && typeof parsed.error.message === 'string') {
      return new HttpFailure(response.status, parsed.error)
    }
  } catch {
    // not JSON: a proxy's page
  }
  return new HttpFailure(response.status, {
    code: response.status >= 500 ? 'unavailable' : 'internal',
    message: `${response.statusText || 'error'}${text === '' ? '' : `: ${text.slice(0, 200)}`}`,
  })
}

/** A JSON request to the server as a cold Observable; unsubscribing aborts it. */
export function request(
  settings: ClientSettings,
  method: 'GET' | 'PUT' | 'DELETE' | 'POST',
  path: string,
  query: Readonly<Record<string, string>>,
  body?: unknown,
): Observable<unknown> {
  const url = `${settings.base}${path}?${new URLSearchParams(query).toString()}`
  return new Observable<unknown>((subscriber) => {
    const controller = new AbortController()
    const init: RequestInit = {
      method,
      headers: {
        ...settings.headers,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      signal: controller.signal,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }
    settings
      .fetch(url, init)
      .then(async (response) => {
        if (!response.ok) throw await failureOf(response)
        const answer: unknown = await response.json()
        subscriber.next(answer)
        subscriber.complete()
      })
      .catch((error: unknown) => {
        subscriber.error(error)
      })
    return () => {
      controller.abort()
    }
  }).pipe(
    timeout({
      first: settings.requestTimeoutMs,
      scheduler: settings.scheduler,
      with: () =>
        throwError(
          () =>
            new DatasyncError(
              'timeout',
              `${NAME}: ${method} ${path}: no answer within ${settings.requestTimeoutMs} ms (requestTimeout)`,
            ),
        ),
    }),
  )
}

/**
 * The client's error table: 401 closes the store (a wrong token is fatal, never retried), 403
 * fails the one operation (it names the key), 5xx and network failures are `unavailable`
 * (retried by watches), a wrong route says the URL is wrong.
 */
export function httpErrorMapper(base: string): ErrorMapper {
  return (raw, what) => {
    if (raw instanceof HttpFailure) {
      const { status, error } = raw
      const message = `${what}: ${error.message}`
      if (status === 401) {
        return forStore(
          new AuthError(NAME, `the server at ${base} refused the credentials (${message})`),
        )
      }
      if (status === 403) return inOperation(new AuthError(NAME, message))
      if (status === 404 && error.code === 'not-found') {
        return forStore(new ConfigError(base, undefined, `not a rx-datasync server (${message})`))
      }
      if (error.code === 'capability') {
        return inOperation(new CapabilityError(NAME, error.capability ?? what, error.message))
      }
      if (status >= 500 && status !== 501) return inOperation(new UnavailableError(NAME, message))
      if (error.code === 'conflict')
        return inOperation(new DatasyncError('conflict', `${NAME}: ${message}`))
      if (status === 400 || status === 413) {
        return inOperation(new DatasyncError('invalid-argument', `${NAME}: ${message}`))
      }
      return inOperation(new DatasyncError('internal', `${NAME}: ${message}`))
    }
    if (raw instanceof DatasyncError) return inOperation(raw)
    const cause = raw instanceof Error && raw.cause !== undefined ? raw.cause : raw
    return inOperation(
      new UnavailableError(NAME, `${what}: cannot reach ${base}: ${describe(cause)}`, {
        cause: raw,
      }),
    )
  }
}
