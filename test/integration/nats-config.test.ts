/**
 * The NATS configuration: `--nats-config` / `NATS_CONFIG` files, the `NATS_URL` fallback, and the
 * errors for wrong values, which name the file, the line and the field; then loaded
 * configurations against real servers: user/password, a token from a file, mutual TLS, and a
 * wrong password (a fatal AuthError that closes the store).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { firstValueFrom, filter, lastValueFrom } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createNatsStore, loadNatsConfig } from '../../src/backends/nats/index.js'
import { AuthError, ConfigError, string } from '../../src/index.js'
import { startNats, type NatsServer } from '../servers/nats.js'
import { makeTestCertificates, type TestCertificates } from '../support/tls.js'

const text = string()
let dir: string
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rx-datasync-nats-config-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

let files = 0
async function file(content: string): Promise<string> {
  const name = path.join(dir, `nats-${++files}.yaml`)
  await writeFile(name, content)
  return name
}

async function loadError(content: string, env: Record<string, string> = {}): Promise<ConfigError> {
  const name = await file(content)
  const error = await loadNatsConfig({ argv: ['--nats-config', name], env }).catch(
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(ConfigError)
  return error as ConfigError
}

describe('loadNatsConfig', () => {
  it('is undefined when no flag or variable names a file', async () => {
    expect(await loadNatsConfig({ argv: [], env: {} })).toBeUndefined()
  })

  it('reads every field into the store options, from the flag or NATS_CONFIG', async () => {
    const token = path.join(dir, 'token')
    await writeFile(token, 'sekret\n')
    const name = await file(
      [
        'servers: [nats://127.0.0.1:4300, "nats://127.0.0.1:4301"]',
        'bucket: config',
        'create: { replicas: 3, history: 2, storage: memory, max-value-size: 1024 }',
        `token-file: ${token}`,
        'tls: { ca-file: /ca.pem }',
        'request-timeout: 2s',
        'reconnect-time-wait: 250ms',
        'max-reconnect-attempts: 10',
        'heartbeat: 1m30s',
        'discover-servers: false',
        'resync-after-reconnect: true',
      ].join('\n'),
    )
    const fromEnv = await loadNatsConfig({ argv: [], env: { NATS_CONFIG: name } })
    const fromFlag = await loadNatsConfig({ argv: [`--nats-config=${name}`], env: {} })
    expect(fromFlag).toEqual(fromEnv)
    expect(fromFlag).toEqual({
      servers: ['nats://127.0.0.1:4300', 'nats://127.0.0.1:4301'],
      bucket: 'config',
      create: { replicas: 3, history: 2, storage: 'memory', maxValueSize: 1024 },
      token: 'sekret',
      tls: { caFile: '/ca.pem' },
      requestTimeout: '2s',
      reconnectTimeWait: '250ms',
      maxReconnectAttempts: 10,
      heartbeat: '1m30s',
      discoverServers: false,
      resyncAfterReconnect: true,
    })
  })

  it('names the file, the line and the field of a wrong value', async () => {
    const cases: [string, RegExp][] = [
      [
        'bucket: config\nservers: http://x:80\n',
        /nats-\d+\.yaml:2: field 'servers': expected nats:\/\//,
      ],
      ['bucket: "a.b"\n', /:1: field 'bucket': expected letters, digits/],
      ['create:\n  replicas: 2\n', /:2: field 'create\.replicas': expected 1, 3 or 5/],
      ['user: app\n', /:1: field 'password': user\/password authentication needs both/],
      ['user: a\npassword: b\ntoken: c\n', /field 'token': give one way to authenticate/],
      ['tls:\n  cert-file: /c.pem\n', /:1: field 'tls.key-file': a client certificate needs both/],
      ['heartbeat: soon\n', /:1: field 'heartbeat': expected a duration/],
      ['token: a\ntoken-file: /t\n', /field 'token-file': give token or token-file, not both/],
      ['bucket: b\nbukket: c\n', /:2: field 'bukket': unknown field/],
    ]
    for (const [content, message] of cases) {
      expect((await loadError(content)).message).toMatch(message)
    }
    expect((await loadError('bucket: b\n', { NATS_URL: 'http://x' })).message).toMatch(
      /field 'servers': \(taken from NATS_URL\)/,
    )
    expect((await loadError(`token-file: ${path.join(dir, 'missing')}\n`)).message).toMatch(
      /field 'token-file': cannot read .*missing \(ENOENT\)/,
    )
    const seed = path.join(dir, 'seed')
    await writeFile(seed, 'not a seed\n')
    expect((await loadError(`nkey-file: ${seed}\n`)).message).toMatch(
      /field 'nkey-file': .* does not hold an nkey seed/,
    )
  })
})

describe('loaded configurations against real servers', { timeout: 120_000 }, () => {
  let auth: NatsServer | undefined
  let tlsServer: NatsServer | undefined
  let certs: TestCertificates | undefined
  beforeAll(async () => {
    auth = await startNats({
      extraConfig: 'authorization { users: [ { user: app, password: s3cret } ] }',
      // The probe reads the monitoring port, which needs no credentials.
    })
    certs = await makeTestCertificates()
    tlsServer = await startNats({
      extraConfig: [
        'tls {',
        `  cert_file: ${JSON.stringify(certs.serverCertFile)}`,
        `  key_file: ${JSON.stringify(certs.serverKeyFile)}`,
        `  ca_file: ${JSON.stringify(certs.caFile)}`,
        '  verify: true',
        '}',
      ].join('\n'),
    })
  }, 180_000)
  afterAll(async () => {
    await auth?.cleanup()
    await tlsServer?.cleanup()
    await certs?.cleanup()
  })

  it('user/password from a password file: writes and reads through the store', async () => {
    const password = path.join(dir, 'password')
    await writeFile(password, 's3cret\n')
    const options = await loadNatsConfig({
      file: await file(
        `servers: ${auth!.url}\nbucket: cfg\ncreate: true\nuser: app\npassword-file: ${password}\n`,
      ),
      env: {},
    })
    const store = createNatsStore(options)
    try {
      await lastValueFrom(store.put('a/b', text.encode('1')), { defaultValue: undefined })
      const got = await lastValueFrom(store.get('a/b'))
      expect(got && text.decode(got.value)).toBe('1')
    } finally {
      await store.close()
    }
  })

  it('a wrong password is a fatal AuthError that closes the store', async () => {
    const options = await loadNatsConfig({
      file: await file(`servers: ${auth!.url}\nbucket: cfg\nuser: app\npassword: wrong\n`),
      env: {},
    })
    const store = createNatsStore({ ...options, connectTimeout: '2s' })
    const error: unknown = await lastValueFrom(store.get('a/b')).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(AuthError)
    const closed = await firstValueFrom(store.status$.pipe(filter((s) => s.state === 'closed')))
    expect(closed.error).toBeInstanceOf(AuthError)
  })

  it('mutual TLS with the files named in the configuration', async () => {
    const options = await loadNatsConfig({
      file: await file(
        [
          `servers: tls://127.0.0.1:${tlsServer!.port}`,
          'bucket: tls',
          'create: true',
          'tls:',
          `  ca-file: ${certs!.caFile}`,
          `  cert-file: ${certs!.clientCertFile}`,
          `  key-file: ${certs!.clientKeyFile}`,
        ].join('\n'),
      ),
      env: {},
    })
    const store = createNatsStore(options)
    try {
      await lastValueFrom(store.put('t', text.encode('x')), { defaultValue: undefined })
      expect((await lastValueFrom(store.listKeys(''))).includes('t')).toBe(true)
    } finally {
      await store.close()
    }
  })
})
