/**
 * A tiny HTTP client for probes and test helpers: one fresh connection per request (no keep-alive
 * pool, so a killed and restarted server never meets a stale pooled socket), an AbortSignal and a
 * bounded timeout.
 */
import http from 'node:http'

export interface HttpRequestOptions {
  readonly method?: string
  /** A string is sent as it is; anything else is sent as JSON. */
  readonly body?: unknown
  readonly headers?: Readonly<Record<string, string>>
  readonly signal?: AbortSignal
  /** Aborts the request after this long (ms). Default 5 000. */
  readonly timeoutMs?: number
}

export interface HttpResponse {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

export function httpRequest(url: string, options: HttpRequestOptions = {}): Promise<HttpResponse> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 5_000)
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
  const payload =
    options.body === undefined
      ? undefined
      : typeof options.body === 'string'
        ? options.body
        : JSON.stringify(options.body)
  const headers: Record<string, string> = { connection: 'close', ...options.headers }
  if (payload !== undefined) {
    headers['content-type'] ??= 'application/json'
    headers['content-length'] = String(Buffer.byteLength(payload))
  }
  return new Promise<HttpResponse>((resolve, reject) => {
    signal.throwIfAborted()
    // Report the abort reason (e.g. a TimeoutError) rather than Node's generic AbortError.
    const fail = (err: Error): void => {
      reject(signal.aborted ? (signal.reason as Error) : err)
    }
    const req = http.request(
      url,
      { method: options.method ?? 'GET', headers, agent: false, signal },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.once('error', fail)
        res.once('end', () => {
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          })
        })
      },
    )
    req.once('error', fail)
    req.end(payload)
  })
}

/** POSTs (or GETs, without body) JSON and parses the JSON answer; non-2xx statuses throw. */
export async function httpJson(url: string, options: HttpRequestOptions = {}): Promise<unknown> {
  const res = await httpRequest(url, {
    method: options.body === undefined ? 'GET' : 'POST',
    ...options,
  })
  if (res.status < 200 || res.status >= 300) {
    throw new Error(`HTTP ${res.status} from ${url}: ${res.body.slice(0, 500)}`)
  }
  return JSON.parse(res.body) as unknown
}
