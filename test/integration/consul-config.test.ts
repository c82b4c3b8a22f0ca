/**
 * The Consul configuration: `--consul-config` / `CONSUL_CONFIG` files, the environment fallbacks
 * (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`), and the errors for wrong values, which name the file,
 * the line and the field; then a loaded configuration against a real agent.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { lastValueFrom } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createConsulStore, loadConsulConfig } from '../../src/backends/consul/index.js'
import { ConfigError, string } from '../../src/index.js'
import { CONSUL_BUILD_TIMEOUT_MS, ensureConsul } from '../servers/consul-install.js'
import { consulKvGet, startConsul } from '../servers/consul.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rx-datasync-consul-config-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

let files = 0
async function file(content: string): Promise<string> {
  const name = path.join(dir, `consul-${++files}.yaml`)
  await writeFile(name, content)
  return name
}

async function loadError(content: string, env: Record<string, string> = {}): Promise<ConfigError> {
  const name = await file(content)
  const error = await loadConsulConfig({ argv: ['--consul-config', name], env }).catch(
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(ConfigError)
  return error as ConfigError
}

describe('loadConsulConfig', () => {
  it('is undefined when neither --consul-config nor CONSUL_CONFIG names a file', async () => {
    expect(await loadConsulConfig({ argv: [], env: {} })).toBeUndefined()
    expect(await loadConsulConfig({ argv: [], env: { CONSUL_CONFIG: '' } })).toBeUndefined()
  })

  it('reads the file named by the flag (both forms) or the environment, flag first', async () => {
    const a = await file('address: 10.0.0.1:8500\n')
    const b = await file('address: 10.0.0.2:8500\n')
    expect((await loadConsulConfig({ argv: ['--consul-config', a], env: {} }))?.address).toBe(
      '10.0.0.1:8500',
    )
    expect((await loadConsulConfig({ argv: [`--consul-config=${a}`], env: {} }))?.address).toBe(
      '10.0.0.1:8500',
    )
    expect((await loadConsulConfig({ argv: [], env: { CONSUL_CONFIG: b } }))?.address).toBe(
      '10.0.0.2:8500',
    )
    expect(
      (await loadConsulConfig({ argv: ['--consul-config', a], env: { CONSUL_CONFIG: b } }))
        ?.address,
    ).toBe('10.0.0.1:8500')
  })

  it('maps every field to the store options', async () => {
    const tokenFile = path.join(dir, 'token')
    await writeFile(tokenFile, '  s3cret-from-file\n')
    const name = await file(
      [
        'address: https://consul.internal:8501',
        `token-file: ${tokenFile}`,
        'datacenter: dc2',
        'tls:',
        '  ca-file: /etc/consul/ca.pem',
        '  cert-file: /etc/consul/client.pem',
        '  key-file: /etc/consul/client-key.pem',
        '  server-name: server.dc2.consul',
        '  insecure-skip-verify: false',
        'consistency: stale',
        'wait-time: 1m',
        'request-timeout: 5s',
        'min-query-interval: 250ms',
        'retry-delay: 1s',
        'max-retry-delay: 30s',
        'status-interval: 10s',
        'max-concurrent-requests: 8',
        'min-ttl: 15s',
        'resync-after-reconnect: true',
        '',
      ].join('\n'),
    )
    expect(await loadConsulConfig({ argv: ['--consul-config', name], env: {} })).toEqual({
      address: 'https://consul.internal:8501',
      token: 's3cret-from-file',
      datacenter: 'dc2',
      tls: {
        caFile: '/etc/consul/ca.pem',
        certFile: '/etc/consul/client.pem',
        keyFile: '/etc/consul/client-key.pem',
        serverName: 'server.dc2.consul',
        insecureSkipVerify: false,
      },
      consistency: 'stale',
      waitTime: '1m',
      requestTimeout: '5s',
      minQueryInterval: '250ms',
      retryDelay: '1s',
      maxRetryDelay: '30s',
      statusInterval: '10s',
      maxConcurrentRequests: 8,
      minTtl: '15s',
      resyncAfterReconnect: true,
    })
  })

  it('falls back to CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN; an empty file is all defaults', async () => {
    const name = await file('')
    expect(
      await loadConsulConfig({
        argv: ['--consul-config', name],
        env: { CONSUL_HTTP_ADDR: '127.0.0.9:8500', CONSUL_HTTP_TOKEN: 'from-env' },
      }),
    ).toEqual({ address: '127.0.0.9:8500', token: 'from-env' })
    const own = await file('address: 127.0.0.2:8500\ntoken: mine\n')
    expect(
      await loadConsulConfig({
        argv: ['--consul-config', own],
        env: { CONSUL_HTTP_ADDR: '127.0.0.9:8500', CONSUL_HTTP_TOKEN: 'from-env' },
      }),
    ).toEqual({ address: '127.0.0.2:8500', token: 'mine' })
  })

  it('names the file, the line and the field of a wrong value', async () => {
    const unknown = await loadError('address: 127.0.0.1:8500\nadress: typo\n')
    expect(unknown.message).toMatch(/consul-\d+\.yaml:2: field 'adress': unknown field/)
    const duration = await loadError('\nwait-time: soon\n')
    expect(duration.message).toMatch(/:2: field 'wait-time': expected a duration/)
    const address = await loadError('datacenter: dc1\naddress: "ftp://x:1"\n')
    expect(address.message).toMatch(
      /:2: field 'address': expected an http:\/\/ or https:\/\/ address/,
    )
    const wait = await loadError('wait-time: 11m\n')
    expect(wait.message).toMatch(/:1: field 'wait-time': expected a duration from 1ms to 10m/)
    const pair = await loadError('tls:\n  cert-file: /c.pem\n')
    expect(pair.message).toMatch(/field 'tls.key-file': a client certificate needs both/)
    const plain = await loadError('address: http://h:8500\ntls:\n  ca-file: /ca.pem\n')
    expect(plain.message).toMatch(/:1: field 'address': tls is set but the address/)
    const both = await loadError('token: a\ntoken-file: /t\n')
    expect(both.message).toMatch(/field 'token-file': give token or token-file, not both/)
    const consistency = await loadError('consistency: strong\n')
    expect(consistency.message).toMatch(/:1: field 'consistency'/)
    const yaml = await loadError('address: [unclosed\n')
    expect(yaml.message).toMatch(/not valid YAML/)
    const fromEnv = await loadError('', { CONSUL_HTTP_ADDR: 'unix:///tmp/consul.sock' })
    expect(fromEnv.message).toMatch(
      /field 'address': \(taken from CONSUL_HTTP_ADDR\) expected an http/,
    )
  })

  it('says when the file or the token file is missing', async () => {
    const missing = await loadConsulConfig({
      argv: ['--consul-config', path.join(dir, 'nope.yaml')],
      env: {},
    }).catch((e: unknown) => e)
    expect(missing).toBeInstanceOf(ConfigError)
    expect((missing as Error).message).toMatch(/nope\.yaml: the configuration file does not exist/)
    const tokenFile = await loadError(`token-file: ${path.join(dir, 'no-token')}\n`)
    expect(tokenFile.message).toMatch(/field 'token-file': cannot read .*no-token \(ENOENT\)/)
    const flag = await loadConsulConfig({ argv: ['--consul-config'], env: {} }).catch(
      (e: unknown) => e,
    )
    expect((flag as Error).message).toMatch(/--consul-config: expected a file path after the flag/)
  })
})

describe('createConsulStore options', () => {
  it('refuses wrong options with a ConfigError naming the field', () => {
    const bad: [object, RegExp][] = [
      [{ address: 'ftp://h:1' }, /field 'address'/],
      [{ address: 'h:1', tls: { caFile: 3 } }, /field 'tls.caFile': expected a non-empty string/],
      [{ waitTime: '20m' }, /field 'waitTime'/],
      [{ waitTime: 'soon' }, /field 'waitTime'/],
      [{ requestTimeout: 0 }, /field 'requestTimeout': expected a positive duration/],
      [{ retryDelay: '2s', maxRetryDelay: '1s' }, /field 'maxRetryDelay'/],
      [{ minTtl: '500ms' }, /field 'minTtl': expected at least 1s/],
      [{ consistency: 'linearizable' }, /field 'consistency'/],
      [{ token: '' }, /field 'token': expected a non-empty string/],
      [{ maxConcurrentRequests: 0 }, /field 'maxConcurrentRequests': expected a whole number/],
      [{ resyncAfterReconnect: 'yes' }, /field 'resyncAfterReconnect': expected a boolean/],
    ]
    for (const [options, message] of bad) {
      let error: unknown
      try {
        createConsulStore(options)
      } catch (e) {
        error = e
      }
      expect(error, JSON.stringify(options)).toBeInstanceOf(ConfigError)
      expect((error as Error).message).toMatch(message)
    }
  })

  it('takes host:port, [v6]:port and URLs with a path prefix', () => {
    for (const address of ['127.0.0.1:8500', 'localhost', '[::1]:8500', 'http://h:80/consul/']) {
      expect(() => createConsulStore({ address })).not.toThrow()
    }
  })
})

describe('a loaded configuration against a real agent', () => {
  it(
    'connects with what the file says',
    async () => {
      await ensureConsul()
      const agent = await startConsul({ node: 'configured' })
      try {
        const name = await file(`address: ${agent.address}\nwait-time: 5s\n`)
        const config = await loadConsulConfig({ argv: [`--consul-config=${name}`], env: {} })
        if (config === undefined) throw new Error('the file named by the flag was not loaded')
        const store = createConsulStore(config)
        try {
          await lastValueFrom(store.put('configured/1', string().encode('yes')), {
            defaultValue: undefined,
          })
          expect(await consulKvGet(agent.httpUrl, 'configured/1')).toBe('yes')
        } finally {
          await store.close()
        }
      } finally {
        await agent.cleanup()
      }
    },
    CONSUL_BUILD_TIMEOUT_MS,
  )
})
