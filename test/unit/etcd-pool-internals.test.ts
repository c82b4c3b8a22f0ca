/**
 * The etcd backend reaches into etcd3's connection pool, which etcd3 does not expose
 * (src/backends/etcd/client.ts): replacing TLS credentials for insecureSkipVerify, forgetting a
 * stale auth token, and opening watch streams with the `hasleader` metadata. Those members are
 * pinned here: a new etcd3 that renames or reshapes them fails this test, before it fails users.
 * package.json accepts etcd3 within the range this test was run against (~1.1.2).
 */
import { readFileSync } from 'node:fs'
import { Etcd3 } from 'etcd3'
import { describe, expect, it } from 'vitest'

const peerRange = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    peerDependencies: Record<string, string>
  }
).peerDependencies.etcd3
const installed = (
  JSON.parse(
    readFileSync(new URL('../../node_modules/etcd3/package.json', import.meta.url), 'utf8'),
  ) as { version: string }
).version

describe("etcd3's private connection pool, as the etcd backend uses it", () => {
  it('is the etcd3 version range package.json accepts', () => {
    expect(peerRange).toBe('~1.1.2')
    expect(installed).toMatch(/^1\.1\.\d+$/)
  })

  it('keeps the members the backend reaches for', () => {
    // Nothing connects: gRPC channels are made on the first call.
    const client = new Etcd3({
      hosts: ['127.0.0.1:1'],
      auth: { username: 'u', password: 'p' },
      credentials: { rootCertificate: Buffer.from('') },
    })
    try {
      const pool = (client as unknown as { pool: Record<string, unknown> }).pool
      expect(pool, 'client.pool').toBeTypeOf('object')
      // insecureSkipVerify: every host's channelCredentials and the authenticator's credentials.
      const hosts = pool.hosts as { channelCredentials?: unknown }[]
      expect(Array.isArray(hosts), 'pool.hosts is an array').toBe(true)
      expect(hosts).toHaveLength(1)
      expect(hosts[0], 'host.channelCredentials').toHaveProperty('channelCredentials')
      const authenticator = pool.authenticator as Record<string, unknown>
      expect(authenticator, 'pool.authenticator.credentials').toHaveProperty('credentials')
      // forgetToken: the authenticator's cached token is dropped.
      expect(authenticator.invalidateMetadata, 'invalidateMetadata').toBeTypeOf('function')
      // openWatchStream: a connection to the Watch service, and marking a member failed.
      expect(pool.withConnection, 'pool.withConnection').toBeTypeOf('function')
      expect(pool.markFailed, 'pool.markFailed').toBeTypeOf('function')
    } finally {
      client.close()
    }
  })
})
