/**
 * The `rx-datasync` command on PostgreSQL: a postgres:// URL and --postgres-config both open the
 * store (its table created if missing), against a server of this file's own.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { NEVER, asyncScheduler } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/run.js'
import type { CliIo } from '../../src/cli/context.js'
import { startPostgres, type PostgresServer } from '../servers/postgres.js'

let server: PostgresServer
let dir: string
beforeAll(async () => {
  server = await startPostgres()
  dir = await mkdtemp(path.join(os.tmpdir(), 'rx-datasync-pgcli-'))
}, 120_000)
afterAll(async () => {
  await server.cleanup()
  await rm(dir, { recursive: true, force: true })
})

async function cli(
  args: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    stdin: (async function* () {})(),
    env: {},
    cwd: dir,
    signals: NEVER,
    scheduler: asyncScheduler,
  }
  const code = await run(args, io)
  return { code, stdout, stderr }
}

describe('rx-datasync on PostgreSQL', { timeout: 60_000 }, () => {
  it('puts and gets through a postgres:// URL', async () => {
    const url = server.url
    expect(await cli(['put', '--store', url, 'cfg/a', 'one'])).toMatchObject({ code: 0 })
    const got = await cli(['get', '--store', url, 'cfg/a'])
    expect(got).toMatchObject({ code: 0 })
    expect(got.stdout.trim()).toBe('one')
    const rows = await server.query<{ key: string }>('SELECT key FROM rx_datasync_kv')
    expect(rows).toEqual([{ key: 'cfg/a' }])
  })

  it('opens the store of --postgres-config, and names the file of a wrong one', async () => {
    const file = path.join(dir, 'pg.yaml')
    await writeFile(file, `host: ${server.host}\nport: ${server.port}\ntable: cli_kv\n`)
    expect(await cli(['put', '--postgres-config', file, 'k', 'v'])).toMatchObject({ code: 0 })
    expect(await server.query('SELECT key FROM cli_kv')).toEqual([{ key: 'k' }])
    const wrong = path.join(dir, 'wrong.yaml')
    await writeFile(wrong, 'host: h\npool-size: 0\n')
    const failed = await cli(['get', '--postgres-config', wrong, 'k'])
    expect(failed.code).toBe(4)
    expect(failed.stderr).toMatch(/wrong\.yaml:2: field 'pool-size'/)
  })
})
