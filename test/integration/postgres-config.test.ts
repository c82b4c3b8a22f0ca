/**
 * loadPostgresConfig: the YAML file to the store's options, errors naming file, line and field;
 * and a store opened from a connection URL in such a file talks to a real server.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { lastValueFrom } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPostgresStore, loadPostgresConfig } from '../../src/backends/postgres/index.js'
import { ConfigError } from '../../src/index.js'
import { startPostgres, type PostgresServer } from '../servers/postgres.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rx-datasync-pgconfig-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function config(name: string, text: string): Promise<string> {
  const file = path.join(dir, name)
  await writeFile(file, text)
  return file
}

async function failure(file: string): Promise<ConfigError> {
  const error: unknown = await loadPostgresConfig({ file }).catch((e: unknown) => e)
  expect(error).toBeInstanceOf(ConfigError)
  return error as ConfigError
}

describe('loadPostgresConfig', () => {
  it('reads the fields, a password file and TLS files relative to the file', async () => {
    await writeFile(path.join(dir, 'pw'), 'secret\n')
    await writeFile(path.join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\n')
    const file = await config(
      'full.yaml',
      [
        'host: db.internal',
        'port: 6543',
        'database: app',
        'user: app',
        'password-file: pw',
        'tls:',
        '  ca-file: ca.pem',
        'pool-size: 4',
        'statement-timeout: 2s',
        'table: app_kv',
        'resync-after-reconnect: true',
      ].join('\n'),
    )
    expect(await loadPostgresConfig({ file })).toEqual({
      host: 'db.internal',
      port: 6543,
      database: 'app',
      user: 'app',
      password: 'secret',
      tls: { ca: '-----BEGIN CERTIFICATE-----\n', insecureSkipVerify: false },
      poolSize: 4,
      statementTimeout: '2s',
      table: 'app_kv',
      resyncAfterReconnect: true,
    })
  })

  it('finds the file by --postgres-config, then POSTGRES_CONFIG; none is undefined', async () => {
    const file = await config('flag.yaml', 'url: postgres://a@h:1/d\n')
    const expected = { connectionString: 'postgres://a@h:1/d' }
    expect(await loadPostgresConfig({ argv: ['--postgres-config', file], env: {} })).toEqual(
      expected,
    )
    expect(await loadPostgresConfig({ argv: [], env: { POSTGRES_CONFIG: file } })).toEqual(expected)
    expect(await loadPostgresConfig({ argv: [], env: {} })).toBeUndefined()
  })

  it('names file, line and field of a wrong value', async () => {
    const unknown = await failure(await config('unknown.yaml', 'host: h\nhots: x\n'))
    expect(unknown.message).toMatch(/unknown\.yaml:2: field 'hots': unknown field/)
    const port = await failure(await config('port.yaml', 'host: h\nport: 70000\n'))
    expect(port.message).toMatch(/port\.yaml:2: field 'port'/)
    const table = await failure(await config('table.yaml', 'table: "Bad-Name"\n'))
    expect(table.message).toMatch(/table\.yaml:1: field 'table': expected a name of lower-case/)
    const url = await failure(await config('url.yaml', 'url: http://x\n'))
    expect(url.message).toMatch(/url\.yaml:1: field 'url': expected a postgres:\/\//)
    const both = await failure(await config('both.yaml', 'password: a\npassword-file: b\n'))
    expect(both.message).toMatch(
      /both\.yaml:2: field 'password-file': give password or password-file/,
    )
    const missing = await failure(await config('missing.yaml', 'user: u\npassword-file: nope\n'))
    expect(missing.message).toMatch(
      /missing\.yaml:2: field 'password-file': the file .*nope does not exist/,
    )
    const timeout = await failure(await config('timeout.yaml', 'statement-timeout: soon\n'))
    expect(timeout.message).toMatch(/timeout\.yaml:1: field 'statement-timeout'/)
  })
})

describe('a store from a configuration file with a connection URL', { timeout: 90_000 }, () => {
  let server: PostgresServer
  beforeAll(async () => {
    server = await startPostgres()
  }, 120_000)
  afterAll(async () => {
    await server.cleanup()
  })

  it('connects with the URL, the table field winning over the default', async () => {
    const file = await config('url-store.yaml', `url: ${server.url}\ntable: from_config\n`)
    const options = await loadPostgresConfig({ file })
    const store = createPostgresStore(options ?? {})
    try {
      await lastValueFrom(store.put('k', new TextEncoder().encode('v')))
      const rows = await server.query<{ key: string }>('SELECT key FROM from_config')
      expect(rows).toEqual([{ key: 'k' }])
    } finally {
      await store.close()
    }
  })
})
