/**
 * The Consul store against an agent with ACLs enabled (default policy deny): a token the agent
 * does not know is a clear, fatal AuthError (no retry loop), a token that lacks a permission fails
 * only that operation, and the right token works.
 */
import { filter, firstValueFrom, lastValueFrom, timeout } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createConsulStore } from '../../src/backends/consul/index.js'
import {
  AuthError,
  createDatasync,
  isRetryable,
  string,
  type DatasyncError,
} from '../../src/index.js'
import { recordConsumer } from '../../src/testing/index.js'
import { CONSUL_BUILD_TIMEOUT_MS, ensureConsul } from '../servers/consul-install.js'
import { startConsul, type ConsulAgent } from '../servers/consul.js'
import { httpRequest } from '../servers/index.js'
import { startTcpProxy } from '../support/tcp-proxy.js'

const ROOT = 'root-token'
const ACL = `
acl {
  enabled = true
  default_policy = "deny"
  tokens {
    initial_management = "${ROOT}"
    agent = "${ROOT}"
  }
}
`
const text = string()
const enc = (value: string) => text.encode(value)

let agent: ConsulAgent
/** A token that may read `app/` and nothing else. */
let readOnly: string

async function aclCall(path: string, body: unknown): Promise<unknown> {
  const res = await httpRequest(`${agent.httpUrl}${path}`, {
    method: 'PUT',
    body,
    headers: { 'x-consul-token': ROOT },
  })
  if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status} ${res.body}`)
  return JSON.parse(res.body)
}

beforeAll(async () => {
  await ensureConsul()
  agent = await startConsul({ config: ACL, node: 'acl' })
  await aclCall('/v1/acl/policy', {
    Name: 'app-read',
    Rules: 'key_prefix "app/" { policy = "read" }',
  })
  const token = (await aclCall('/v1/acl/token', { Policies: [{ Name: 'app-read' }] })) as {
    SecretID: string
  }
  readOnly = token.SecretID
}, CONSUL_BUILD_TIMEOUT_MS)

afterAll(async () => {
  await agent.cleanup()
})

describe('ACL tokens', () => {
  it('a token the agent does not know: the watch fails at once with a fatal AuthError, the store closes with it, the orchestrator halts', async () => {
    const proxy = await startTcpProxy(agent.ports.http)
    const store = createConsulStore({ address: proxy.address, token: 'not-a-token' })
    const sync = createDatasync(store)
    try {
      recordConsumer(sync.register('app', { prefixes: ['app/'], codec: text }))
      sync.start()
      const halted = await firstValueFrom(
        sync.status$.pipe(
          filter((s) => s.state === 'halted'),
          timeout(10_000),
        ),
      )
      const error = halted.error as DatasyncError
      expect(error).toBeInstanceOf(AuthError)
      expect(error.code).toBe('auth')
      expect(isRetryable(error)).toBe(false)
      expect(error.message).toMatch(/does not know the ACL token \(403 ACL not found\)/)
      expect(error.message).toContain(proxy.address)
      const status = await firstValueFrom(store.status$)
      expect(status).toEqual({ state: 'closed', error })
      // No retry loop: nothing waits on the agent any more, and every call fails the same way.
      expect(proxy.blockingQueries).toBe(0)
      await expect(lastValueFrom(store.get('app/x'))).rejects.toBe(error)
      await expect(lastValueFrom(store.watch(['app/']))).rejects.toBe(error)
    } finally {
      sync.close()
      await store.close()
      await proxy.close()
    }
  })

  it('a token that lacks a permission fails that operation with an AuthError; the store goes on', async () => {
    const root = createConsulStore({ address: agent.address, token: ROOT })
    const store = createConsulStore({ address: agent.address, token: readOnly })
    try {
      await lastValueFrom(root.put('app/x', enc('1')), { defaultValue: undefined })
      await lastValueFrom(root.put('other/y', enc('2')), { defaultValue: undefined })
      expect(text.decode((await lastValueFrom(store.get('app/x')))!.value)).toBe('1')
      const denied = await lastValueFrom(store.put('app/x', enc('3'))).catch((e: unknown) => e)
      expect(denied).toBeInstanceOf(AuthError)
      expect((denied as Error).message).toMatch(/Permission denied/)
      const unreadable = await lastValueFrom(store.get('other/y')).catch((e: unknown) => e)
      expect(unreadable).toBeInstanceOf(AuthError)
      // Consul filters listings to what the token may read.
      expect(await lastValueFrom(store.listKeys(''))).toEqual(['app/x'])
      expect((await firstValueFrom(store.status$)).state).not.toBe('closed')
      expect(text.decode((await lastValueFrom(store.get('app/x')))!.value)).toBe('1')
    } finally {
      await store.close()
      await root.close()
    }
  })

  it('the right token works: writes, transactions and a watch', async () => {
    const store = createConsulStore({ address: agent.address, token: ROOT })
    const sync = createDatasync(store)
    try {
      await lastValueFrom(store.put('ok/1', enc('a')), { defaultValue: undefined })
      const recorder = recordConsumer(sync.register('ok', { prefixes: ['ok/'], codec: text }))
      sync.start()
      await lastValueFrom(
        store.txn([
          { op: 'put', key: 'ok/2', value: enc('b') },
          { op: 'delete', key: 'ok/1' },
        ]),
      )
      await recorder.until((state) => state.size === 1 && state.get('ok/2') === 'b')
      expect(recorder.violations).toEqual([])
    } finally {
      sync.close()
      await store.close()
    }
  })
})
