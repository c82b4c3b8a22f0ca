/**
 * The Consul store over HTTPS against an agent that verifies its clients: the TLS files of the
 * options work, and a TLS mismatch (no client certificate, a CA that did not sign the agent's
 * certificate, a file that cannot be read) is a fatal ConfigError that names what to check.
 */
import { lastValueFrom } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createConsulStore, type ConsulStoreOptions } from '../../src/backends/consul/index.js'
import { ConfigError, createDatasync, string } from '../../src/index.js'
import { recordConsumer } from '../../src/testing/index.js'
import { CONSUL_BUILD_TIMEOUT_MS, ensureConsul } from '../servers/consul-install.js'
import { startConsul, type ConsulAgent } from '../servers/consul.js'
import { freePort } from '../servers/index.js'
import { makeTestCertificates, type TestCertificates } from '../support/tls.js'

const text = string()

let certs: TestCertificates
let agent: ConsulAgent
let httpsPort: number

beforeAll(async () => {
  await ensureConsul()
  certs = await makeTestCertificates()
  httpsPort = await freePort()
  agent = await startConsul({
    node: 'tls',
    config: `
ports { https = ${httpsPort} }
tls {
  defaults {
    ca_file = "${certs.caFile}"
    cert_file = "${certs.serverCertFile}"
    key_file = "${certs.serverKeyFile}"
  }
  https { verify_incoming = true }
}
`,
  })
}, CONSUL_BUILD_TIMEOUT_MS)

afterAll(async () => {
  await agent.cleanup()
  await certs.cleanup()
})

const https = () => `https://127.0.0.1:${httpsPort}`

async function failure(options: ConsulStoreOptions): Promise<unknown> {
  const store = createConsulStore({ address: https(), ...options })
  try {
    return await lastValueFrom(store.get('x')).catch((error: unknown) => error)
  } finally {
    await store.close()
  }
}

describe('TLS', () => {
  it('talks to the agent over HTTPS with a CA file and a client certificate: broker and watch', async () => {
    const store = createConsulStore({
      address: https(),
      tls: { caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile },
    })
    const sync = createDatasync(store)
    try {
      await lastValueFrom(store.put('tls/1', text.encode('secure')), { defaultValue: undefined })
      const recorder = recordConsumer(sync.register('tls', { prefixes: ['tls/'], codec: text }))
      sync.start()
      await recorder.until((state) => state.get('tls/1') === 'secure')
      await lastValueFrom(store.put('tls/2', text.encode('too')), { defaultValue: undefined })
      await recorder.until((state) => state.get('tls/2') === 'too')
      expect(recorder.violations).toEqual([])
    } finally {
      sync.close()
      await store.close()
    }
  })

  it('a scheme-less address is https when tls is given', async () => {
    const store = createConsulStore({
      address: `127.0.0.1:${httpsPort}`,
      tls: { caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile },
    })
    try {
      expect(await lastValueFrom(store.get('tls/none'))).toBeUndefined()
    } finally {
      await store.close()
    }
  })

  it('without the client certificate the agent wants: a fatal ConfigError', async () => {
    const error = await failure({ tls: { caFile: certs.caFile } })
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as Error).message).toMatch(/TLS connection to https:\/\/127\.0\.0\.1:\d+ failed/)
  })

  it('with a CA that did not sign the agent certificate: a fatal ConfigError, and the store closes', async () => {
    const store = createConsulStore({
      address: https(),
      tls: {
        caFile: certs.otherCaFile,
        certFile: certs.clientCertFile,
        keyFile: certs.clientKeyFile,
      },
    })
    try {
      const error = await lastValueFrom(store.get('x')).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as Error).message).toMatch(/ca-file/)
      expect(await lastValueFrom(store.status$)).toEqual({ state: 'closed', error })
    } finally {
      await store.close()
    }
  })

  it('a TLS file that cannot be read: a ConfigError naming the field and the file', async () => {
    const error = await failure({ tls: { caFile: '/nonexistent/ca.pem' } })
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as Error).message).toMatch(
      /field 'caFile': cannot read \/nonexistent\/ca\.pem \(ENOENT\)/,
    )
  })
})
