/**
 * The HTTP server's security and its answers to bad requests, with real servers on loopback:
 * TLS with generated certificates, bearer tokens (wrong, read-only, limited to one prefix), CORS,
 * malformed requests, limits; the health component and the metrics.
 */
import { filter, firstValueFrom, lastValueFrom, take, timeout, toArray } from 'rxjs'
import { Agent, fetch as undiciFetch } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import {
  AuthError,
  UnavailableError,
  createMemoryStore,
  string,
  type KvStore,
  type StoreEvent,
} from '../../src/index.js'
import { createHealth } from '../../src/health/index.js'
import { serveStore } from '../../src/http/index.js'
import { createHttpStore, type FetchLike } from '../../src/http/client/index.js'
import { httpRequest } from '../servers/index.js'
import { makeTestCertificates } from '../support/tls.js'

/** undici's own RequestInit (with the DOM lib in the program, the global one differs). */
type UndiciInit = NonNullable<Parameters<typeof undiciFetch>[1]>

const text = string()
const enc = (value: string) => text.encode(value)
const opened: (() => unknown)[] = []
afterEach(async () => {
  for (const close of opened.splice(0).reverse()) await close()
})

const TOKENS = {
  'writer-token': { read: [''], write: [''] },
  'reader-token': { read: ['a/'] },
  'a-writer-token': { read: ['a/'], write: ['a/'] },
}

async function served(options: Parameters<typeof serveStore>[1] = {}, withTokens = true) {
  const upstream = createMemoryStore({ initial: { 'a/1': enc('one'), 'b/1': enc('bee') } })
  const server = await serveStore(upstream, withTokens ? { tokens: TOKENS, ...options } : options)
  opened.push(() => upstream.close())
  opened.push(() => server.close())
  return { upstream, server }
}

function store(url: string, options: Parameters<typeof createHttpStore>[1] = {}): KvStore {
  const created = createHttpStore(url, { reconnectInterval: '200ms', ...options })
  opened.push(() => created.close())
  return created
}

const failure = (operation: Promise<unknown>) =>
  operation.then(
    () => {
      throw new Error('expected a failure')
    },
    (error: unknown) => error,
  )

describe('http: security', { timeout: 60_000 }, () => {
  it('serves over TLS to a client that trusts the CA, and a client that does not is refused', async () => {
    const certs = await makeTestCertificates()
    opened.push(() => certs.cleanup())
    const { server } = await served({
      tls: {
        cert: await certs.pem(certs.serverCertFile),
        key: await certs.pem(certs.serverKeyFile),
      },
    })
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:/)
    const dispatcher = new Agent({ connect: { ca: await certs.pem(certs.caFile) } })
    opened.push(() => dispatcher.close())
    const trusting: FetchLike = (url, init) =>
      undiciFetch(url, { ...(init as UndiciInit), dispatcher })
    const client = store(server.url, { token: 'writer-token', fetch: trusting })
    await lastValueFrom(client.put('a/tls', enc('secure')), { defaultValue: undefined })
    const got = await lastValueFrom(client.get('a/tls'))
    expect(got && text.decode(got.value)).toBe('secure')
    const first = await firstValueFrom(client.watch(['a/']))
    expect(first.type === 'snapshot' && first.items.map((item) => item.key)).toEqual([
      'a/1',
      'a/tls',
    ])

    const wrongCa = new Agent({ connect: { ca: await certs.pem(certs.otherCaFile) } })
    opened.push(() => wrongCa.close())
    const untrusting: FetchLike = (url, init) =>
      undiciFetch(url, { ...(init as UndiciInit), dispatcher: wrongCa })
    const refused = await failure(
      lastValueFrom(store(server.url, { token: 'writer-token', fetch: untrusting }).get('a/1')),
    )
    expect(refused).toBeInstanceOf(UnavailableError)
    expect((refused as Error).message).toMatch(/certificate/i)
  })

  it('a wrong token is fatal and clear: the store closes with an AuthError, the watch does not retry', async () => {
    const { server } = await served()
    const client = store(server.url, { token: 'not-a-token' })
    const watchError = await failure(lastValueFrom(client.watch(['a/'])))
    expect(watchError).toBeInstanceOf(AuthError)
    expect((watchError as Error).message).toMatch(/refused the credentials.*the token is not known/)
    const closed = await firstValueFrom(
      client.status$.pipe(filter((status) => status.state === 'closed')),
    )
    expect(closed.error).toBe(watchError)
    // Refused once; every later call fails at once with the same error, without a request.
    const errorsBefore = server.metrics().requestErrors
    expect(await failure(lastValueFrom(client.get('a/1')))).toBe(watchError)
    expect(server.metrics().requestErrors).toBe(errorsBefore)
    expect(errorsBefore).toBe(1)

    const anonymous = await httpRequest(`${server.url}/v1/kv?key=a/1`)
    expect(anonymous.status).toBe(401)
    expect(anonymous.headers['www-authenticate']).toBe('Bearer')
    expect(JSON.parse(anonymous.body)).toEqual({
      error: {
        code: 'unauthorized',
        message: 'no token: send the header Authorization: Bearer <token>',
      },
    })
  })

  it('a read-only token writing gets a 403 naming the key; the store goes on', async () => {
    const { server, upstream } = await served()
    const reader = store(server.url, { token: 'reader-token' })
    const refused = await failure(
      lastValueFrom(reader.put('a/1', enc('x')), { defaultValue: undefined }),
    )
    expect(refused).toBeInstanceOf(AuthError)
    expect((refused as Error).message).toContain('may not write the key "a/1"')
    const txnRefused = await failure(
      lastValueFrom(reader.txn([{ op: 'delete', key: 'a/', prefix: true }])),
    )
    expect((txnRefused as Error).message).toContain('may not write the prefix "a/"')
    expect(text.decode(upstream.dump().get('a/1')!.value)).toBe('one')
    const got = await lastValueFrom(reader.get('a/1'))
    expect(got && text.decode(got.value)).toBe('one')
    expect((await firstValueFrom(reader.status$)).state).toBe('ready')
    // A token that may write a/ only: a transaction touching b/ is refused whole.
    const aWriter = store(server.url, { token: 'a-writer-token' })
    const mixed = await failure(
      lastValueFrom(
        aWriter.txn([
          { op: 'put', key: 'a/2', value: enc('2') },
          { op: 'put', key: 'b/2', value: enc('2') },
        ]),
      ),
    )
    expect((mixed as Error).message).toContain('"b/2"')
    expect(upstream.dump().has('a/2')).toBe(false)
  })

  it('a token limited to one prefix watching two sees only the prefix it may read', async () => {
    const { server } = await served()
    const reader = store(server.url, { token: 'reader-token' })
    const writer = store(server.url, { token: 'writer-token' })
    const events: StoreEvent<Uint8Array>[] = []
    const watching = reader.watch(['a/', 'b/']).subscribe((event) => events.push(event))
    opened.push(() => {
      watching.unsubscribe()
    })
    const seen = firstValueFrom(
      reader.watch(['a/', 'b/']).pipe(take(2), toArray(), timeout(20_000)),
    )
    await lastValueFrom(writer.put('b/2', enc('hidden')), { defaultValue: undefined })
    await lastValueFrom(writer.put('a/2', enc('shown')), { defaultValue: undefined })
    const [snapshot, change] = await seen
    expect(snapshot?.type === 'snapshot' && snapshot.items.map((item) => item.key)).toEqual(['a/1'])
    expect(change?.type === 'changes' && change.changes.map((c) => c.key)).toEqual(['a/2'])
    expect(await lastValueFrom(reader.listKeys(''))).toEqual(['a/1', 'a/2'])
    const hidden = await failure(lastValueFrom(reader.get('b/2')))
    expect((hidden as Error).message).toContain('may not read the key "b/2"')
  })
})

describe('http: bad requests, CORS, health and metrics', { timeout: 60_000 }, () => {
  it('answers bad requests with a 4xx JSON error naming the problem, and keeps serving', async () => {
    const { server } = await served({
      maxBodyBytes: 1024,
      prefixes: ['a/', 'b/'],
      cors: { origins: ['http://app.test'] },
    })
    const auth = { authorization: 'Bearer writer-token' }
    const client = store(server.url, { token: 'writer-token' })
    const watching = client.watch(['a/']).subscribe()
    opened.push(() => {
      watching.unsubscribe()
    })
    const cases: [string, Parameters<typeof httpRequest>[1], number, RegExp][] = [
      [
        '/v1/kv?key=a/1',
        { method: 'PUT', body: '{"value": ', headers: auth },
        400,
        /malformed JSON body/,
      ],
      [
        '/v1/kv?key=a/1',
        { method: 'PUT', body: { value: { text: 'x'.repeat(2000) } }, headers: auth },
        413,
        /larger than maxBodyBytes \(1024 bytes\)/,
      ],
      [
        '/v1/kv?key=a/1',
        { method: 'PUT', body: { value: 12 }, headers: auth },
        400,
        /put 'a\/1': expected a value as/,
      ],
      ['/v1/nothing', { headers: auth }, 404, /unknown route "\/v1\/nothing"/],
      ['/v1/watch?prefix=c/', { headers: auth }, 400, /the prefix "c\/" is not served/],
      ['/v1/watch', { headers: auth }, 400, /at least one 'prefix'/],
      [
        '/v1/watch?prefix=a/',
        { headers: { ...auth, 'last-event-id': 'yesterday' } },
        400,
        /Last-Event-ID header: expected a revision/,
      ],
      ['/v1/kv', { headers: auth }, 400, /missing query parameter 'key'/],
      [
        '/v1/txn',
        { method: 'POST', body: { ops: [{ op: 'move', key: 'a/1' }] }, headers: auth },
        400,
        /txn ops\[0\]: 'op': expected 'put' or 'delete'/,
      ],
      [
        '/v1/kv?key=c/1',
        { method: 'PUT', body: { value: { text: 'x' } }, headers: auth },
        403,
        /may not write the key "c\/1"/,
      ],
    ]
    for (const [path, options, status, message] of cases) {
      const answer = await httpRequest(`${server.url}${path}`, options)
      expect(answer.status, path).toBe(status)
      const body = JSON.parse(answer.body) as { error: { message: string } }
      expect(body.error.message, path).toMatch(message)
    }
    // CORS: an allowed origin gets its preflight answered; another gets no CORS headers.
    const preflight = await httpRequest(`${server.url}/v1/watch?prefix=a/`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://app.test',
        'access-control-request-headers': 'authorization,last-event-id',
      },
    })
    expect(preflight.status).toBe(204)
    expect(preflight.headers['access-control-allow-origin']).toBe('http://app.test')
    expect(preflight.headers['access-control-allow-headers']).toContain('last-event-id')
    const other = await httpRequest(`${server.url}/v1/kv?key=a/1`, {
      headers: { ...auth, origin: 'http://evil.test' },
    })
    expect(other.status).toBe(200)
    expect(other.headers['access-control-allow-origin']).toBeUndefined()
    // Still serving: the watch client is connected and a write goes through.
    expect(server.metrics().clients).toBe(1)
    await lastValueFrom(client.put('a/ok', enc('fine')), { defaultValue: undefined })
    expect(server.metrics().requestErrors).toBe(cases.length)
  })

  it('refuses watch clients past maxClients with 503 busy', async () => {
    const { server } = await served({ maxClients: 1 }, false)
    const first = store(server.url)
    const watching = first.watch(['a/']).subscribe()
    opened.push(() => {
      watching.unsubscribe()
    })
    await firstValueFrom(first.status$.pipe(filter((status) => status.state === 'ready')))
    const busy = await httpRequest(`${server.url}/v1/watch?prefix=a/`)
    expect(busy.status).toBe(503)
    expect(JSON.parse(busy.body)).toMatchObject({ error: { code: 'busy' } })
  })

  it('reports its health through createHealth and its metrics in Prometheus text', async () => {
    const { server } = await served({}, false)
    const health = createHealth().addStore('http', server)
    expect((await health.report()).ready).toBe(true)
    const client = store(server.url)
    const watching = client.watch(['a/']).subscribe()
    opened.push(() => {
      watching.unsubscribe()
    })
    await firstValueFrom(client.status$.pipe(filter((status) => status.state === 'ready')))
    const metrics = await httpRequest(`${server.url}/metrics`)
    expect(metrics.status).toBe(200)
    expect(metrics.body).toMatch(/^rx_datasync_http_clients 1$/m)
    expect(metrics.body).toMatch(/^rx_datasync_http_events_sent_total [1-9]/m)
    expect(metrics.body).toContain('rx_datasync_http_slow_clients_cut_total 0')
    const probe = await httpRequest(`${server.url}/v1/health`)
    expect(probe.status).toBe(200)
    expect(JSON.parse(probe.body)).toMatchObject({ state: 'ready', clients: 1 })
  })
})
