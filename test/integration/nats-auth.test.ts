/**
 * nkey and creds-file logins against real nats-servers configured for them (issue 19): an nkey
 * user in the server's `authorization` block, and operator mode (a trusted operator, a memory
 * resolver preloaded with a JetStream-enabled account) with a user's `.creds` file. Each store is
 * built from a configuration file (`nkey-file`, `creds-file`) and then writes, reads and watches;
 * a key or a user the server does not know is a fatal AuthError that closes the store.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { filter, firstValueFrom, lastValueFrom } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createNatsStore, loadNatsConfig, type NatsStore } from '../../src/backends/nats/index.js'
import { AuthError, string } from '../../src/index.js'
import { startNats, type NatsServer } from '../servers/nats.js'
import { nkeyUser, operatorSetup, type NkeyUser, type OperatorSetup } from '../support/nats-auth.js'

const text = string()
let dir: string
let files = 0
async function file(name: string, content: string): Promise<string> {
  const at = path.join(dir, `${++files}-${name}`)
  await writeFile(at, content, { mode: 0o600 })
  return at
}

/** A put, a get, and a watch that sees the value: the login works for every kind of request. */
async function writesReadsWatches(store: NatsStore): Promise<void> {
  await lastValueFrom(store.put('auth/1', text.encode('one')), { defaultValue: undefined })
  const got = await lastValueFrom(store.get('auth/1'))
  expect(got && text.decode(got.value)).toBe('one')
  const snapshot = await firstValueFrom(store.watch(['auth/']))
  expect(snapshot.type === 'snapshot' && snapshot.items.map((item) => item.key)).toEqual(['auth/1'])
}

async function refused(store: NatsStore): Promise<void> {
  const error: unknown = await lastValueFrom(store.get('auth/1')).catch((e: unknown) => e)
  expect(error).toBeInstanceOf(AuthError)
  const closed = await firstValueFrom(store.status$.pipe(filter((s) => s.state === 'closed')))
  expect(closed.error).toBeInstanceOf(AuthError)
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rx-datasync-nats-auth-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('nkey login on a real server', { timeout: 120_000 }, () => {
  let server: NatsServer | undefined
  let user: NkeyUser
  beforeAll(async () => {
    user = nkeyUser()
    server = await startNats({ extraConfig: user.serverConfig })
  }, 180_000)
  afterAll(async () => {
    await server?.cleanup()
  })

  it('a seed from nkey-file: writes, reads and watches', async () => {
    const seed = await file('user.nk', `${user.seed}\n`)
    const options = await loadNatsConfig({
      file: await file(
        'nats.yaml',
        `servers: ${server!.url}\nbucket: nk\ncreate: true\nnkey-file: ${seed}\n`,
      ),
      env: {},
    })
    expect(options?.nkeySeed).toBe(user.seed)
    const store = createNatsStore(options)
    try {
      await writesReadsWatches(store)
    } finally {
      await store.close()
    }
  })

  it('a seed the server does not know is a fatal AuthError that closes the store', async () => {
    const store = createNatsStore({
      servers: server!.url,
      bucket: 'nk',
      nkeySeed: nkeyUser().seed,
      connectTimeout: '2s',
    })
    await refused(store)
  })
})

describe('creds-file login on a server in operator mode', { timeout: 120_000 }, () => {
  let server: NatsServer | undefined
  let setup: OperatorSetup
  beforeAll(async () => {
    setup = operatorSetup()
    server = await startNats({ extraConfig: setup.serverConfig })
  }, 180_000)
  afterAll(async () => {
    await server?.cleanup()
  })

  it("a user's .creds file from creds-file: writes, reads and watches in its account", async () => {
    const creds = await file('app.creds', setup.creds)
    const options = await loadNatsConfig({
      file: await file(
        'nats.yaml',
        `servers: ${server!.url}\nbucket: creds\ncreate: true\ncreds-file: ${creds}\n`,
      ),
      env: {},
    })
    expect(options?.credsFile).toBe(creds)
    const store = createNatsStore(options)
    try {
      await writesReadsWatches(store)
    } finally {
      await store.close()
    }
  })

  it('a user of an account the server does not trust is a fatal AuthError', async () => {
    const store = createNatsStore({
      servers: server!.url,
      bucket: 'creds',
      credsFile: await file('stranger.creds', setup.strangerCreds),
      connectTimeout: '2s',
    })
    await refused(store)
  })
})
