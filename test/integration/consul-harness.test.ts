/**
 * The Consul part of the test-server harness: the cached build, a dev agent (memory only), a
 * server with a data directory (survives a restart), and cleanup.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  CONSUL_BUILD_TIMEOUT_MS,
  CONSUL_VERSION,
  consulBinaryPath,
  ensureConsul,
} from '../servers/consul-install.js'
import {
  consulKvDelete,
  consulKvGet,
  consulKvPut,
  consulLeader,
  startConsul,
} from '../servers/consul.js'
import { canConnect } from '../servers/index.js'

const run = promisify(execFile)

beforeAll(() => ensureConsul(), CONSUL_BUILD_TIMEOUT_MS)

describe('the consul harness', () => {
  it(`builds (or finds) consul v${CONSUL_VERSION} in the cache outside the repository`, async () => {
    const binary = await ensureConsul()
    if (process.env.RX_DATASYNC_CONSUL === undefined) expect(binary).toBe(consulBinaryPath())
    expect(binary.startsWith(process.cwd())).toBe(false)
    const { stdout } = await run(binary, ['version'])
    expect(stdout).toContain(`Consul v${CONSUL_VERSION}`)
  })

  it('a dev agent answers on its own loopback ports and forgets everything on restart', async () => {
    const agent = await startConsul({ node: 'harness-dev' })
    try {
      expect(await consulLeader(agent.httpUrl)).toBe(agent.serverAddress)
      await consulKvPut(agent.httpUrl, 'h/a b', 'v 1')
      expect(await consulKvGet(agent.httpUrl, 'h/a b')).toBe('v 1')
      await consulKvDelete(agent.httpUrl, 'h/', { recurse: true })
      expect(await consulKvGet(agent.httpUrl, 'h/a b')).toBeUndefined()
      await consulKvPut(agent.httpUrl, 'h/x', 'y')
      await agent.restart()
      expect(await consulKvGet(agent.httpUrl, 'h/x')).toBeUndefined()
    } finally {
      await agent.cleanup()
    }
    expect(await canConnect(agent.ports.http)).toBe(false)
  })

  it('a server keeps its data across a kill and a restart, and cleanup removes its directory', async () => {
    const agent = await startConsul({ mode: 'server', node: 'harness-server' })
    let dir: string | undefined
    try {
      dir = agent.dataDir
      await consulKvPut(agent.httpUrl, 'kept', 'yes')
      await agent.kill()
      expect(await canConnect(agent.ports.http)).toBe(false)
      await agent.start()
      expect(await consulKvGet(agent.httpUrl, 'kept')).toBe('yes')
    } finally {
      await agent.cleanup()
    }
    expect(existsSync(dir)).toBe(process.env.RX_DATASYNC_KEEP_SERVER_DIRS === '1')
  })
})
