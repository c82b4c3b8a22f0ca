/**
 * The etcd configuration loader (`--etcd-config` / `ETCD_CONFIG`, the Go original's fields) and
 * the factory's option checks. No server needed.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { lastValueFrom } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEtcdStore, loadEtcdConfig } from '../../src/backends/etcd/index.js'
import { ConfigError } from '../../src/core/errors.js'
import { makeTestCertificates } from '../support/tls.js'

let dir = ''
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rx-datasync-etcd-config-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

let fileCounter = 0
async function configFile(lines: readonly string[]): Promise<string> {
  const file = path.join(dir, `etcd-${++fileCounter}.yaml`)
  await writeFile(file, [...lines, ''].join('\n'))
  return file
}

const noEnv = {}

async function failure(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  )
  expect(error).toBeInstanceOf(ConfigError)
  return error as ConfigError
}

describe('loadEtcdConfig', () => {
  it('reads every field the Go original knows', async () => {
    const certs = await makeTestCertificates()
    const [ca, cert, key] = await Promise.all([
      certs.pem(certs.caFile),
      certs.pem(certs.clientCertFile),
      certs.pem(certs.clientKeyFile),
    ])
    await certs.cleanup()
    await writeFile(path.join(dir, 'ca.pem'), ca)
    await writeFile(path.join(dir, 'client.pem'), cert)
    await writeFile(path.join(dir, 'client-key.pem'), key)
    const file = await configFile([
      'endpoints:',
      '  - 10.0.0.1:2379',
      '  - 10.0.0.2:2379',
      'dial-timeout: 500ms',
      'operation-timeout: 5s',
      'insecure-transport: false',
      'insecure-skip-tls-verify: true',
      'cert-file: client.pem',
      'key-file: client-key.pem',
      `ca-file: ${path.join(dir, 'ca.pem')}`,
      'username: app',
      'password: secret',
      'auto-compact: 60m',
      'resync-after-reconnect: true',
      'allow-delayed-start: true',
      'reconnect-interval: 3s',
      'session-ttl: 7',
    ])
    const options = await loadEtcdConfig({ argv: ['--etcd-config', file], env: noEnv })
    expect(options).toEqual({
      endpoints: ['10.0.0.1:2379', '10.0.0.2:2379'],
      dialTimeout: '500ms',
      operationTimeout: '5s',
      tls: {
        ca,
        cert,
        key,
        insecureSkipVerify: true,
      },
      auth: { username: 'app', password: 'secret' },
      autoCompact: '60m',
      resyncAfterReconnect: true,
      allowDelayedStart: true,
      reconnectInterval: '3s',
      sessionTtl: '7s',
    })
    // The options are what the factory takes.
    await createEtcdStore({
      ...options,
      tls: { ...options!.tls, insecureSkipVerify: false },
    }).close()
  })

  it('finds the file by --etcd-config=path, --etcd-config path, or ETCD_CONFIG; the flag wins', async () => {
    const fromFlag = await configFile(['endpoints: [flag:2379]'])
    const fromEnv = await configFile(['endpoints: [env:2379]'])
    expect(
      (await loadEtcdConfig({ argv: [`--etcd-config=${fromFlag}`], env: { ETCD_CONFIG: fromEnv } }))
        ?.endpoints,
    ).toEqual(['flag:2379'])
    expect(
      (await loadEtcdConfig({ argv: ['--etcd-config', fromFlag], env: noEnv }))?.endpoints,
    ).toEqual(['flag:2379'])
    expect((await loadEtcdConfig({ argv: [], env: { ETCD_CONFIG: fromEnv } }))?.endpoints).toEqual([
      'env:2379',
    ])
    expect(await loadEtcdConfig({ argv: [], env: noEnv })).toBeUndefined()
  })

  it('falls back to ETCD_ENDPOINTS, then ETCDV3_ENDPOINTS, then the store default', async () => {
    const file = await configFile(['dial-timeout: 0', 'session-ttl: 0'])
    const load = (env: Record<string, string>) => loadEtcdConfig({ file, argv: [], env })
    expect((await load({ ETCD_ENDPOINTS: 'a:1, b:2' }))?.endpoints).toEqual(['a:1', 'b:2'])
    expect((await load({ ETCDV3_ENDPOINTS: 'c:3' }))?.endpoints).toEqual(['c:3'])
    const none = await load({})
    // 0 keeps the defaults, as in the Go original.
    expect(none).toEqual({ resyncAfterReconnect: false, allowDelayedStart: false })
  })

  it('names the file, the line and the field of an unknown field', async () => {
    const file = await configFile(['endpoints: [a:1]', 'dial-timout: 1s'])
    const error = await failure(loadEtcdConfig({ file, env: noEnv }))
    expect(error.message).toBe(
      `${file}:2: field 'dial-timout': unknown field; did you mean 'dial-timeout'?`,
    )
  })

  it('names the field and what was expected for a wrong type', async () => {
    const boolean = await configFile(['allow-delayed-start: yes please'])
    expect((await failure(loadEtcdConfig({ file: boolean, env: noEnv }))).message).toMatch(
      new RegExp(`^${escape(boolean)}:1: field 'allow-delayed-start': .*expected boolean`),
    )
    const duration = await configFile(['endpoints: [a:1]', 'operation-timeout: soon'])
    expect((await failure(loadEtcdConfig({ file: duration, env: noEnv }))).message).toBe(
      `${duration}:2: field 'operation-timeout': expected a duration such as '500ms', '10s' or '1m'`,
    )
    const ttl = await configFile(['session-ttl: 5s'])
    expect((await failure(loadEtcdConfig({ file: ttl, env: noEnv }))).message).toMatch(
      /:1: field 'session-ttl': expected a whole number of seconds/,
    )
    const endpoints = await configFile(['endpoints: 127.0.0.1:2379'])
    expect((await failure(loadEtcdConfig({ file: endpoints, env: noEnv }))).message).toMatch(
      /:1: field 'endpoints': .*expected array/,
    )
    const url = await configFile(['endpoints: [ftp://x:1]'])
    expect((await failure(loadEtcdConfig({ file: url, env: noEnv }))).message).toMatch(
      /:1: field 'endpoints.0': expected 'host:port', 'http:\/\/host:port' or 'https:\/\/host:port', got 'ftp:\/\/x:1'/,
    )
  })

  it('names the file that cannot be read: the configuration and the certificates', async () => {
    const missing = path.join(dir, 'nope.yaml')
    expect((await failure(loadEtcdConfig({ file: missing, env: noEnv }))).message).toBe(
      `${missing}: the configuration file does not exist`,
    )
    const file = await configFile(['endpoints: [a:1]', 'ca-file: missing-ca.pem'])
    expect((await failure(loadEtcdConfig({ file, env: noEnv }))).message).toBe(
      `${file}:2: field 'ca-file': the file ${path.join(dir, 'missing-ca.pem')} does not exist`,
    )
    await writeFile(path.join(dir, 'junk.pem'), 'junk')
    const junk = await configFile(['ca-file: junk.pem'])
    expect((await failure(loadEtcdConfig({ file: junk, env: noEnv }))).message).toMatch(
      new RegExp(`^${escape(junk)}:1: field 'ca-file': .*junk.pem is not a PEM certificate`),
    )
    const half = await configFile(['cert-file: client.pem'])
    expect((await failure(loadEtcdConfig({ file: half, env: noEnv }))).message).toMatch(
      /:1: field 'key-file': expected key-file too/,
    )
    const user = await configFile(['username: app'])
    expect((await failure(loadEtcdConfig({ file: user, env: noEnv }))).message).toMatch(
      /:1: field 'password': expected password too/,
    )
    const syntax = await configFile(['endpoints: [a:1', 'dial-timeout: 1s'])
    expect((await failure(loadEtcdConfig({ file: syntax, env: noEnv }))).message).toMatch(
      new RegExp(`^${escape(syntax)}:\\d+: not valid YAML`),
    )
  })

  it('with insecure-transport, ignores the certificate files (plain text, nothing read)', async () => {
    const file = await configFile(['insecure-transport: true', 'ca-file: not-there.pem'])
    const options = await loadEtcdConfig({ file, env: noEnv })
    expect(options?.tls).toBeUndefined()
  })

  it('refuses a flag without a path', async () => {
    const error = await failure(loadEtcdConfig({ argv: ['--etcd-config'], env: noEnv }))
    expect(error.message).toMatch(/--etcd-config: expected a file path after the flag/)
  })
})

describe('createEtcdStore options', () => {
  it('throws a TypeError that says what was expected', () => {
    expect(() => createEtcdStore({ endpoints: [] })).toThrow(
      /endpoints: expected a non-empty array of URLs/,
    )
    expect(() => createEtcdStore({ endpoints: ['ftp://x'] })).toThrow(
      /expected 'host:port', 'http:\/\/host:port' or 'https:\/\/host:port', got "ftp:\/\/x"/,
    )
    expect(() => createEtcdStore({ endpoints: ['http://a:1', 'https://b:2'] })).toThrow(
      /all https or none/,
    )
    expect(() => createEtcdStore({ tls: { ca: 'not a certificate' } })).toThrow(
      /tls.ca: expected a PEM certificate/,
    )
    expect(() => createEtcdStore({ maxWritesInFlight: 0 })).toThrow(
      /maxWritesInFlight: expected an integer of at least 1, got 0/,
    )
    expect(() => createEtcdStore({ dialTimeout: '0s' })).toThrow(
      /dialTimeout: expected a positive duration/,
    )
    expect(() => createEtcdStore({ operationTimeout: 'soon' as never })).toThrow(/operationTimeout/)
    expect(() => createEtcdStore({ tls: { cert: 'x', key: 'y' } })).toThrow(
      /tls.cert: expected a PEM/,
    )
    expect(() => createEtcdStore({ auth: { username: '', password: 'x' } })).toThrow(
      /auth: expected/,
    )
  })

  it('refuses a put with both ttl and session, and values that are not bytes', async () => {
    const store = createEtcdStore({ endpoints: ['127.0.0.1:1'] })
    try {
      await expect(
        lastValueFrom(store.put('k', new Uint8Array(1), { ttl: '1s', session: true })),
      ).rejects.toThrow(/either ttl or session, not both/)
      await expect(lastValueFrom(store.put('k', 'text' as never))).rejects.toThrow(
        /to be a Uint8Array \(wrap the store with withCodec for other types\)/,
      )
    } finally {
      await store.close()
    }
  })
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
