/**
 * `rx-datasync serve` over a real etcd, and the other commands against the served store by its
 * http:// URL, with the token in RX_DATASYNC_HTTP_TOKEN; a wrong server configuration file.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pollUntil, startEtcd, useServer } from '../servers/index.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'bin', 'rx-datasync.js')
const ENV: Record<string, string> = Object.fromEntries(
  Object.entries(process.env).filter(
    (entry): entry is [string, string] =>
      entry[1] !== undefined && !/^(RX_DATASYNC_|ETCD|REDIS|CONSUL|FILEDB)/.test(entry[0]),
  ),
)

/** A running `rx-datasync` child process with its output. */
function launch(args: readonly string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 100_000,
    killSignal: 'SIGKILL',
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exit = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.once('close', (code) => {
      resolve({ code, stdout, stderr })
    })
  })
  return {
    exit,
    waitFor: (pattern: RegExp) =>
      pollUntil(() => pattern.exec(stdout) ?? undefined, {
        timeoutMs: 60_000,
        description: `${String(pattern)} on stdout (stdout: ${stdout.slice(-300)}, stderr: ${stderr.slice(-300)})`,
      }),
    stop: () => {
      child.kill('SIGTERM')
      return exit
    },
  }
}

let work = ''
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'rx-datasync-http-cli-'))
})
afterAll(async () => {
  await rm(work, { recursive: true, force: true })
})

describe('rx-datasync serve', { timeout: 120_000 }, () => {
  const etcd = useServer(() => startEtcd())

  it('serves etcd; get, put, list and watch work through its http:// URL with tokens', async () => {
    const config = join(work, 'http.yaml')
    await writeFile(
      config,
      [
        'tokens:',
        '  rw-token: { read: [""], write: [""] }',
        '  ro-token: { read: ["app/"] }',
        '',
      ].join('\n'),
    )
    const server = launch([
      'serve',
      '--store',
      `etcd://127.0.0.1:${etcd().clientPort}`,
      '--http-config',
      config,
    ])
    try {
      const url = (await server.waitFor(/^SERVING .* at (http:\/\/\S+)$/m))[1] ?? ''
      const rw = { RX_DATASYNC_HTTP_TOKEN: 'rw-token' }
      const ro = { RX_DATASYNC_HTTP_TOKEN: 'ro-token' }
      expect(await launch(['put', 'app/a', 'one', '--store', url], rw).exit).toMatchObject({
        code: 0,
      })
      expect(await launch(['put', 'other/x', 'hidden', '--store', url], rw).exit).toMatchObject({
        code: 0,
      })
      expect(await launch(['get', 'app/a', '--store', url], ro).exit).toMatchObject({
        code: 0,
        stdout: 'one\n',
      })
      const refused = await launch(['put', 'app/b', 'no', '--store', url], ro).exit
      expect(refused.code).toBe(4)
      expect(refused.stderr).toContain('may not write the key "app/b"')
      const wrong = await launch(['get', 'app/a', '--store', url], {
        RX_DATASYNC_HTTP_TOKEN: 'nope',
      }).exit
      expect(wrong.code).toBe(4)
      expect(wrong.stderr).toContain('the token is not known')
      const listed = await launch(['list', '', '--store', url], ro).exit
      expect(listed.code).toBe(0)
      expect(listed.stdout).toContain('app/a')
      expect(listed.stdout).not.toContain('other/x')

      const watching = launch(['watch', 'app/', '--json', '--store', url], ro)
      try {
        await watching.waitFor(/"op":"put","key":"app\/a"/)
        expect(await launch(['put', 'app/c', 'three', '--store', url], rw).exit).toMatchObject({
          code: 0,
        })
        await watching.waitFor(/"op":"put","key":"app\/c","value":"three"/)
      } finally {
        expect((await watching.stop()).code).toBe(0)
      }
    } finally {
      expect((await server.stop()).code).toBe(0)
    }
  })

  it('a wrong server configuration file is a configuration error naming the file, line and field', async () => {
    const config = join(work, 'bad.yaml')
    await writeFile(config, 'port: 0\nmax-clients: -1\n')
    const result = await launch([
      'serve',
      '--store',
      `etcd://127.0.0.1:${etcd().clientPort}`,
      '--http-config',
      config,
    ]).exit
    expect(result.code).toBe(4)
    expect(result.stderr).toContain(`${config}:2: field 'max-clients'`)
  })
})
