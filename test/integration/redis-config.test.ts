/**
 * The Redis configuration loader: the Go original's three file shapes (node, Sentinel, Cluster)
 * become store options; mistakes are reported with the file, the line and the field. One test
 * loads a file and talks to a real server with the options it produced.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { lastValueFrom } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError } from '../../src/index.js'
import { createRedisStore, loadRedisConfig } from '../../src/backends/redis/index.js'
import { freePort, redisCommand, startRedis, type RedisServer } from '../servers/index.js'

let dir: string
let server: RedisServer | undefined

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'rx-datasync-redis-config-'))
})

afterAll(async () => {
  await server?.cleanup()
  await rm(dir, { recursive: true, force: true })
})

let fileCount = 0
async function file(text: string): Promise<string> {
  const name = path.join(dir, `redis-${++fileCount}.yaml`)
  await writeFile(name, text)
  return name
}

async function configError(text: string): Promise<ConfigError> {
  const name = await file(text)
  const error: unknown = await loadRedisConfig({ file: name }).catch((e: unknown) => e)
  expect(error).toBeInstanceOf(ConfigError)
  return error as ConfigError
}

describe('loadRedisConfig', () => {
  it('is disabled (undefined) when neither the flag nor the environment names a file', async () => {
    expect(await loadRedisConfig({ argv: [], env: {} })).toBeUndefined()
  })

  it('reads the file named by --redis-config, then by REDIS_CONFIG', async () => {
    const a = await file('endpoint: 10.0.0.1:6379\n')
    const b = await file('endpoint: 10.0.0.2:6380\n')
    expect(
      await loadRedisConfig({ argv: ['--redis-config', a], env: { REDIS_CONFIG: b } }),
    ).toEqual({
      node: '10.0.0.1:6379',
    })
    expect(await loadRedisConfig({ argv: [`--redis-config=${b}`], env: {} })).toEqual({
      node: '10.0.0.2:6380',
    })
    expect(await loadRedisConfig({ argv: [], env: { REDIS_CONFIG: b } })).toEqual({
      node: '10.0.0.2:6380',
    })
  })

  it("reads the Go original's node sample: zero values mean defaults", async () => {
    // db/keyval/redis/examples/node-client.yaml of cn-infra, as shipped.
    const options = await loadRedisConfig({
      file: await file(
        [
          'db: 0',
          'dial-timeout: 0',
          'enable-query-on-slave: false',
          'endpoint: localhost:6379',
          'password: ""',
          'pool:',
          '  busy-timeout: 0',
          '  idle-check-frequency: 0',
          '  idle-timeout: 0',
          '  max-connections: 0',
          'read-timeout: 0',
          'tls:',
          '  ca-file: ""',
          '  cert-file: ""',
          '  enabled: false',
          '  key-file: ""',
          '  skip-verify: false',
          'write-timeout: 0',
        ].join('\n'),
      ),
    })
    expect(options).toEqual({ node: 'localhost:6379', db: 0 })
  })

  it('picks Sentinel by master-name, with timeouts as strings or Go nanoseconds', async () => {
    const options = await loadRedisConfig({
      file: await file(
        [
          'endpoints:',
          '- 10.0.0.1:26379',
          '- 10.0.0.2:26379',
          'master-name: mymaster',
          'db: 2',
          'password: secret',
          'dial-timeout: 2s',
          'read-timeout: 500000000',
          'pool:',
          '  max-connections: 5',
        ].join('\n'),
      ),
    })
    expect(options).toEqual({
      sentinel: { sentinels: ['10.0.0.1:26379', '10.0.0.2:26379'], masterName: 'mymaster' },
      db: 2,
      password: 'secret',
      connectTimeout: '2s',
      commandTimeout: 500,
    })
  })

  it('picks Cluster otherwise: replicas for reads, the Go spelling max-rediects', async () => {
    const options = await loadRedisConfig({
      file: await file(
        [
          'endpoints: [10.0.0.1:7000, 10.0.0.2:7001]',
          'enable-query-on-slave: true',
          'max-rediects: 5',
          'route-by-latency: false',
        ].join('\n'),
      ),
    })
    expect(options).toEqual({
      cluster: { nodes: ['10.0.0.1:7000', '10.0.0.2:7001'], scaleReads: 'slave', maxRedirects: 5 },
    })
    const latency = await loadRedisConfig({
      file: await file('endpoints: [10.0.0.1:7000]\nroute-by-latency: true\nmax-redirects: 0\n'),
    })
    expect(latency).toEqual({ cluster: { nodes: ['10.0.0.1:7000'], scaleReads: 'all' } })
  })

  it('names the file, the line and the field of a mistake', async () => {
    const unknown = await configError('endpoint: localhost:6379\ndb: 0\nmaster-nam: typo\n')
    expect(unknown.message).toMatch(/redis-\d+\.yaml:3: field 'master-nam': unknown field/)

    const badAddress = await configError('endpoint: localhost\n')
    expect(badAddress.message).toMatch(/:1: field 'endpoint': expected an address 'host:port'/)

    const badDuration = await configError('endpoint: localhost:6379\nread-timeout: soon\n')
    expect(badDuration.message).toMatch(/:2: field 'read-timeout'/)

    const clusterField = await configError(
      'endpoints: [a:1]\nmaster-name: m\nenable-query-on-slave: true\n',
    )
    expect(clusterField.field).toBe('enable-query-on-slave')
    expect(clusterField.message).toMatch(
      /:3: field 'enable-query-on-slave': not a field of a sentinel configuration \(the shape is sentinel because master-name is set\)$/,
    )

    const noEndpoints = await configError('password: x\n')
    expect(noEndpoints.message).toMatch(/field 'endpoints'/)

    const both = await configError('endpoints: [a:1]\nmax-rediects: 1\nmax-redirects: 2\n')
    expect(both.message).toContain('not both')
  })

  it('reads watch-memory (not in the Go original) and names a wrong value', async () => {
    expect(
      await loadRedisConfig({ file: await file('endpoint: localhost:6379\nwatch-memory: lean\n') }),
    ).toEqual({ node: 'localhost:6379', watchMemory: 'lean' })
    const wrong = await configError('endpoints: [a:1, b:2]\nwatch-memory: small\n')
    expect(wrong.field).toBe('watch-memory')
    expect(wrong.message).toMatch(/:2: field 'watch-memory'/)
    expect(() => createRedisStore({ node: 'a:1', watchMemory: 'small' as 'lean' })).toThrow(
      /redis watchMemory: expected 'values' or 'lean', got "small"/,
    )
  })

  it('reads TLS files and names a missing one', async () => {
    const ca = path.join(dir, 'ca.pem')
    await writeFile(ca, 'not really a certificate')
    const options = await loadRedisConfig({
      file: await file(
        `endpoint: localhost:6380\ntls:\n  enabled: true\n  ca-file: ${ca}\n  skip-verify: true\n`,
      ),
    })
    expect(options?.tls?.rejectUnauthorized).toBe(false)
    expect(String(options?.tls?.ca)).toBe('not really a certificate')

    const missing = await configError(
      'endpoint: localhost:6380\ntls:\n  enabled: true\n  cert-file: /nonexistent/cert.pem\n  key-file: /nonexistent/key.pem\n',
    )
    expect(missing.field).toBe('tls.cert-file')
    expect(missing.message).toContain('/nonexistent/cert.pem')
  })

  it('says when the file does not exist', async () => {
    const error = await loadRedisConfig({ file: path.join(dir, 'absent.yaml') }).catch(
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as Error).message).toContain('does not exist')
  })

  it('produces options a store connects with', async () => {
    const port = await freePort()
    server = await startRedis({
      port,
      name: 'redis-config',
      extraArgs: ['--requirepass', 'pw'],
      ready: async (signal) =>
        (await redisCommand({ port, signal, timeoutMs: 1_000 }, 'AUTH', 'pw')) === 'OK',
    })
    const options = await loadRedisConfig({
      file: await file(`endpoint: 127.0.0.1:${port}\npassword: pw\nread-timeout: 2s\n`),
    })
    const store = createRedisStore(options!)
    try {
      await lastValueFrom(store.put('config/key', new TextEncoder().encode('v')))
      const got = await lastValueFrom(store.get('config/key'))
      expect(new TextDecoder().decode(got?.value)).toBe('v')
    } finally {
      await store.close()
    }
  })
})
