import { spawn, spawnSync } from 'node:child_process'
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  etcdDelete,
  etcdGet,
  etcdPut,
  freePort,
  pollUntil,
  redisCommand,
  startEtcd,
  startRedis,
  useServer,
} from '../servers/index.js'
import { consulKvDelete, consulKvGet, consulKvPut, startConsul } from '../servers/consul.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'bin', 'rx-datasync.js')

/** The environment of every run: this process's, without anything that names a store. */
const BASE_ENV: Record<string, string> = Object.fromEntries(
  Object.entries(process.env).filter(
    (entry): entry is [string, string] =>
      entry[1] !== undefined &&
      !/^(ETCD_CONFIG|REDIS_CONFIG|CONSUL_CONFIG|FILEDB_CONFIG|RX_DATASYNC_STORE|RX_DATASYNC_CLI|ETCD_ENDPOINTS|ETCDV3_ENDPOINTS|CONSUL_HTTP_ADDR|CONSUL_HTTP_TOKEN)$/.test(
        entry[0],
      ),
  ),
)

interface RunOptions {
  readonly cwd?: string
  readonly env?: Record<string, string>
  readonly stdin?: string
  /** The launcher to run. @default this repository's bin/rx-datasync.js */
  readonly bin?: string
}

interface Finished {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** A running `rx-datasync` child process. */
function launch(args: readonly string[], options: RunOptions = {}) {
  const child = spawn(process.execPath, [options.bin ?? BIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...BASE_ENV, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
    // Never leave a child behind, whatever the test did.
    timeout: 100_000,
    killSignal: 'SIGKILL',
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  child.stdin.end(options.stdin)
  const exit = new Promise<Finished>((resolve) => {
    child.once('close', (code, signal) => {
      resolve({ code, signal, stdout, stderr })
    })
  })
  return {
    exit,
    get stdout() {
      return stdout
    },
    get stderr() {
      return stderr
    },
    /** Lines of stdout so far. */
    lines: () => stdout.split('\n').filter((line) => line !== ''),
    /** Waits until stdout holds a line matching `pattern`. */
    waitFor: (pattern: RegExp, description = String(pattern)) =>
      pollUntil(() => stdout.split('\n').find((line) => pattern.test(line)), {
        timeoutMs: 60_000,
        description: `${description} on stdout (stdout: ${stdout.slice(-500)}, stderr: ${stderr.slice(-500)})`,
      }),
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      child.kill(signal)
      return exit
    },
  }
}

/** Runs `rx-datasync` to its end. */
function cli(args: readonly string[], options: RunOptions = {}): Promise<Finished> {
  return launch(args, options).exit
}

/** JSON lines of a command's stdout. */
function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}

let work = ''
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'rx-datasync-cli-'))
})
afterAll(async () => {
  await rm(work, { recursive: true, force: true })
})

describe('rx-datasync against etcd', () => {
  const etcd = useServer(() => startEtcd())
  const url = () => `etcd://127.0.0.1:${etcd().clientPort}`

  it('puts, gets, lists and deletes, with the documented exit codes', async () => {
    const store = ['--store', url()]
    expect(await cli(['put', 'cli/a', 'one', ...store])).toMatchObject({ code: 0, stdout: '' })
    expect(await cli(['put', 'cli/b', ...store], { stdin: 'two\nlines' })).toMatchObject({
      code: 0,
    })
    expect(await etcdGet(etcd().clientUrl, 'cli/b')).toBe('two\nlines')
    expect(await cli(['get', 'cli/a', ...store])).toEqual({
      code: 0,
      signal: null,
      stdout: 'one\n',
      stderr: '',
    })
    const json = await cli(['get', 'cli/a', '--json', ...store])
    expect(jsonLines(json.stdout)).toEqual([
      { key: 'cli/a', value: 'one', revision: expect.stringMatching(/^\d+$/) as unknown },
    ])
    expect(await cli(['get', 'cli/none', ...store])).toMatchObject({
      code: 3,
      stdout: '',
      stderr: "rx-datasync: key 'cli/none' not found\n",
    })
    expect((await cli(['list', 'cli/', ...store])).stdout).toBe(
      'cli/a = one\ncli/b = "two\\nlines"\n',
    )
    expect((await cli(['list', 'cli/', '--keys-only', ...store])).stdout).toBe('cli/a\ncli/b\n')
    expect(await cli(['put', 'cli/c', '/w==', '--encoding', 'base64', ...store])).toMatchObject({
      code: 0,
    })
    expect((await cli(['get', 'cli/c', '--encoding', 'base64', ...store])).stdout).toBe('/w==\n')
    expect(await cli(['del', 'cli/', '--prefix', ...store])).toMatchObject({
      code: 0,
      stdout: 'deleted 3\n',
    })
    expect((await cli(['del', 'cli/a', '--json', ...store])).stdout).toBe('{"deleted":0}\n')
    expect((await cli(['list', 'cli/', ...store])).stdout).toBe('')
  })

  it('reads etcd from --etcd-config, and fails a wrong file with code 4', async () => {
    const good = join(work, 'etcd.yaml')
    await writeFile(good, `endpoints:\n  - 127.0.0.1:${etcd().clientPort}\ndial-timeout: 2s\n`)
    await etcdPut(etcd().clientUrl, 'conf/x', 'from etcd')
    expect((await cli(['get', 'conf/x', '--etcd-config', good])).stdout).toBe('from etcd\n')
    expect((await cli(['get', 'conf/x'], { env: { ETCD_CONFIG: good } })).stdout).toBe(
      'from etcd\n',
    )
    const bad = join(work, 'etcd-bad.yaml')
    await writeFile(bad, 'endpoints: [127.0.0.1:2379]\ndial-timeout: soon\n')
    expect(await cli(['get', 'conf/x', '--etcd-config', bad])).toMatchObject({
      code: 4,
      stdout: '',
      stderr: `rx-datasync: ${bad}:2: field 'dial-timeout': expected a duration such as '500ms', '10s' or '1m'\n`,
    })
  })

  it('exits with 5 when etcd cannot be reached', async () => {
    const port = await freePort()
    const get = await cli(['get', 'k', '--store', `etcd://127.0.0.1:${port}`, '--timeout', '5s'])
    expect(get.code).toBe(5)
    expect(get.stderr).toMatch(/^rx-datasync: etcd/)
    const watch = await cli(['watch', '--store', `etcd://127.0.0.1:${port}`, '--timeout', '5s'])
    expect(watch.code).toBe(5)
    expect(watch.stdout).toBe('')
  })

  it('watches: the resync, then changes with their previous values, as JSON lines', async () => {
    await etcdPut(etcd().clientUrl, 'watch/a', '1')
    await etcdPut(etcd().clientUrl, 'other/z', 'not watched')
    const watching = launch(['watch', 'watch/', '--json', '--store', url()])
    await watching.waitFor(/"op":"put","key":"watch\/a"/, 'the resync')
    await etcdPut(etcd().clientUrl, 'watch/a', '2')
    await etcdPut(etcd().clientUrl, 'watch/b', '3')
    await etcdDelete(etcd().clientUrl, 'watch/a')
    await watching.waitFor(/"op":"delete"/, 'the delete')
    const finished = await watching.stop('SIGTERM')
    expect(finished.code).toBe(0)
    expect(finished.stderr).toBe('')
    const lines = jsonLines(finished.stdout).map(({ revision, ...rest }) => {
      expect(revision).toMatch(/^\d+$/)
      return rest
    })
    expect(lines).toEqual([
      { op: 'resync', reason: 'startup', keys: 1 },
      { op: 'put', key: 'watch/a', value: '1', reason: 'startup' },
      { op: 'put', key: 'watch/a', value: '2', prev: '1', reason: 'live' },
      { op: 'put', key: 'watch/b', value: '3', reason: 'live' },
      { op: 'delete', key: 'watch/a', prev: '2', reason: 'live' },
    ])
  })

  it('watches as readable lines and ends with 0 on SIGINT', async () => {
    await etcdPut(etcd().clientUrl, 'lines/a', '1')
    const watching = launch(['watch', 'lines/', '--store', url()])
    await watching.waitFor(/^ {2}lines\/a = 1$/, 'the resync')
    await etcdPut(etcd().clientUrl, 'lines/a', 'x y')
    await watching.waitFor(/^PUT lines\/a/, 'the change')
    const finished = await watching.stop('SIGINT')
    expect(finished.code).toBe(0)
    const [resync, item, change] = finished.stdout.split('\n')
    expect(resync).toMatch(/^RESYNC startup @\d+ \(1 key\)$/)
    expect(item).toBe('  lines/a = 1')
    expect(change).toMatch(/^PUT lines\/a = x y \(was 1\) @\d+$/)
  })

  it('keeps watching across an etcd restart, reporting the outage on stderr', async () => {
    await etcdPut(etcd().clientUrl, 'outage/a', '1')
    const watching = launch(['watch', 'outage/', '--store', url()])
    await watching.waitFor(/^ {2}outage\/a = 1$/, 'the resync')
    await etcd().kill()
    await pollUntil(() => watching.stderr.includes('waiting for it to recover'), {
      timeoutMs: 60_000,
      description: 'the outage reported on stderr',
    })
    await etcd().restart()
    await etcdPut(etcd().clientUrl, 'outage/a', '2')
    await watching.waitFor(/^PUT outage\/a = 2 \(was 1\)/, 'the change after the restart')
    const finished = await watching.stop()
    expect(finished.code).toBe(0)
    expect(finished.stderr).toMatch(/: degraded .*; waiting for it to recover\n/)
  })

  it('mirrors files into etcd, deletes included, and picks up a later file change', async () => {
    const data = join(work, 'mirror-data')
    await mkdir(data, { recursive: true })
    await writeFile(
      join(data, 'routes.yaml'),
      'data:\n  - key: config/routes/a\n    value: { via: 10.0.0.1 }\n  - key: config/routes/b\n    value: { via: 10.0.0.2 }\n',
    )
    await writeFile(
      join(data, 'ifaces.json'),
      '{"data":[{"key":"config/ifaces/eth0","text":"up"}]}',
    )
    // Already in etcd: a stale key under the target prefix (deleted by the mirror), one outside.
    await etcdPut(etcd().clientUrl, 'app/config/stale', 'old')
    await etcdPut(etcd().clientUrl, 'outside/keep', 'kept')

    const mirroring = launch([
      'mirror',
      '--from',
      `file://${data}`,
      '--to',
      url(),
      '--prefix',
      'config/',
      '--to-prefix',
      'app/config/',
    ])
    await mirroring.waitFor(/^SYNCED startup: 3 keys \(3 put, 1 deleted, 0 failed\)$/, 'the copy')
    expect(await etcdGet(etcd().clientUrl, 'app/config/routes/a')).toBe('{"via":"10.0.0.1"}')
    expect(await etcdGet(etcd().clientUrl, 'app/config/ifaces/eth0')).toBe('up')
    expect(await etcdGet(etcd().clientUrl, 'app/config/stale')).toBeUndefined()
    expect(await etcdGet(etcd().clientUrl, 'outside/keep')).toBe('kept')

    // A later change of the files: one value changes, one key goes away.
    await writeFile(
      join(data, 'routes.yaml'),
      'data:\n  - key: config/routes/a\n    value: { via: 10.0.0.9 }\n',
    )
    await pollUntil(
      async () =>
        (await etcdGet(etcd().clientUrl, 'app/config/routes/a')) === '{"via":"10.0.0.9"}' &&
        (await etcdGet(etcd().clientUrl, 'app/config/routes/b')) === undefined,
      { timeoutMs: 60_000, description: 'the file change mirrored into etcd' },
    )
    await mirroring.waitFor(/^DELETE app\/config\/routes\/b$/)
    const finished = await mirroring.stop('SIGTERM')
    expect(finished.code).toBe(0)
    expect(finished.stderr).toBe('') // not a terminal: no progress
    expect(finished.stdout.split('\n')).toEqual(
      expect.arrayContaining([
        'PUT app/config/routes/a',
        'PUT app/config/routes/b',
        'PUT app/config/ifaces/eth0',
        'DELETE app/config/stale',
        'DELETE app/config/routes/b',
      ]),
    )
  })

  it('mirrors once, and shows progress on stderr only on a terminal', async () => {
    const data = join(work, 'mirror-many')
    await mkdir(data, { recursive: true })
    const entries = Array.from({ length: 300 }, (_, i) => ({ key: `many/${i}`, value: i }))
    await writeFile(join(data, 'many.json'), JSON.stringify({ data: entries }))
    const args = [
      'mirror',
      ...['--from', `file://${data}`, '--to', url(), '--prefix', 'many/'],
      ...['--once', '--quiet'],
    ]

    const plain = await cli(args)
    expect(plain).toMatchObject({
      code: 0,
      stdout: 'SYNCED startup: 300 keys (300 put, 0 deleted, 0 failed)\n',
      stderr: '',
    })
    expect(await etcdGet(etcd().clientUrl, 'many/299')).toBe('299')

    await etcdDelete(etcd().clientUrl, 'many/7')
    // `script` gives the command a terminal for stdin, stdout and stderr.
    const command = [process.execPath, BIN, ...args, '--json']
      .map((arg) => `'${arg.replace(/'/g, "'\\''")}'`)
      .join(' ')
    const terminal = spawnSync('script', ['-qec', command, '/dev/null'], {
      cwd: ROOT,
      env: BASE_ENV,
      encoding: 'utf8',
      timeout: 100_000,
    })
    expect(terminal.error).toBeUndefined() // util-linux `script` is installed
    expect(terminal.status).toBe(0)
    expect(terminal.stdout).toContain('\r\u001b[Kmirror: reading file://')
    expect(terminal.stdout).toContain('{"op":"synced","reason":"startup","keys":300,"put":1,')
    expect(await etcdGet(etcd().clientUrl, 'many/7')).toBe('7')
  })
})

describe('rx-datasync against Redis', () => {
  const redis = useServer(() => startRedis())
  const url = () => `redis://127.0.0.1:${redis().port}/0`

  it('puts, gets, lists and deletes', async () => {
    const store = ['--store', url()]
    expect((await cli(['put', 'r/a', 'alpha', ...store])).code).toBe(0)
    expect(await redisCommand(redis().port, 'GET', 'r/a')).toBe('alpha')
    await redisCommand(redis().port, 'SET', 'r/b', 'beta')
    expect((await cli(['get', 'r/b', ...store])).stdout).toBe('beta\n')
    expect((await cli(['get', 'r/zzz', ...store])).code).toBe(3)
    expect((await cli(['list', 'r/', ...store])).stdout).toBe('r/a = alpha\nr/b = beta\n')
    expect((await cli(['del', 'r/', '--prefix', ...store])).stdout).toBe('deleted 2\n')
    expect((await cli(['list', 'r/', '--keys-only', ...store])).stdout).toBe('')
  })

  it('watches changes made by another client', async () => {
    await redisCommand(redis().port, 'SET', 'w/a', '1')
    const watching = launch(['watch', 'w/', '--json', '--store', url()])
    await watching.waitFor(/"op":"put","key":"w\/a","value":"1"/, 'the resync')
    await redisCommand(redis().port, 'SET', 'w/a', '2')
    await watching.waitFor(/"prev":"1"/, 'the change')
    await redisCommand(redis().port, 'DEL', 'w/a')
    await watching.waitFor(/"op":"delete"/, 'the delete')
    const finished = await watching.stop()
    expect(finished.code).toBe(0)
    const changes = jsonLines(finished.stdout).slice(2)
    expect(changes).toMatchObject([
      { op: 'put', key: 'w/a', value: '2', prev: '1', reason: 'live' },
      { op: 'delete', key: 'w/a', prev: '2', reason: 'live' },
    ])
  })

  it('exits with 5 when Redis cannot be reached within --timeout', async () => {
    const port = await freePort()
    const get = await cli(['get', 'k', '--store', `redis://127.0.0.1:${port}`, '--timeout', '2s'])
    expect(get.code).toBe(5)
    expect(get.stderr).toMatch(/^rx-datasync: redis/)
  })
})

describe('rx-datasync against Consul', () => {
  const consul = useServer(() => startConsul())
  const store = () => ['--store', `consul://${consul().address}`]

  it('puts, gets, lists and deletes, with the documented exit codes', async () => {
    expect((await cli(['put', 'c/a', 'alpha', ...store()])).code).toBe(0)
    expect(await consulKvGet(consul().httpUrl, 'c/a')).toBe('alpha')
    await consulKvPut(consul().httpUrl, 'c/b', 'beta')
    expect((await cli(['get', 'c/b', ...store()])).stdout).toBe('beta\n')
    expect((await cli(['get', 'c/zzz', ...store()])).code).toBe(3)
    expect((await cli(['list', 'c/', ...store()])).stdout).toBe('c/a = alpha\nc/b = beta\n')
    expect((await cli(['del', 'c/', '--prefix', ...store()])).stdout).toBe('deleted 2\n')
    expect(await consulKvGet(consul().httpUrl, 'c/a')).toBeUndefined()
  })

  it('reads Consul from --consul-config or CONSUL_CONFIG, and fails a wrong file with code 4', async () => {
    const good = join(work, 'consul.yaml')
    await writeFile(good, `address: ${consul().address}\nwait-time: 2s\n`)
    await consulKvPut(consul().httpUrl, 'conf/x', 'from consul')
    expect((await cli(['get', 'conf/x', '--consul-config', good])).stdout).toBe('from consul\n')
    expect((await cli(['get', 'conf/x'], { env: { CONSUL_CONFIG: good } })).stdout).toBe(
      'from consul\n',
    )
    const bad = join(work, 'consul-bad.yaml')
    await writeFile(bad, `address: ${consul().address}\nwait-tme: 2s\n`)
    const failed = await cli(['get', 'conf/x', '--consul-config', bad])
    expect(failed).toMatchObject({ code: 4, stdout: '' })
    expect(failed.stderr).toMatch(/^rx-datasync: .*consul-bad\.yaml:2: field 'wait-tme'/)
  })

  it('watches changes made by another client, with their previous values', async () => {
    await consulKvPut(consul().httpUrl, 'w/a', '1')
    const watching = launch(['watch', 'w/', '--json', ...store()])
    await watching.waitFor(/"op":"put","key":"w\/a","value":"1"/, 'the resync')
    await consulKvPut(consul().httpUrl, 'w/a', '2')
    await watching.waitFor(/"prev":"1"/, 'the change')
    await consulKvDelete(consul().httpUrl, 'w/a')
    await watching.waitFor(/"op":"delete"/, 'the delete')
    const finished = await watching.stop()
    expect(finished.code).toBe(0)
    expect(jsonLines(finished.stdout).slice(2)).toMatchObject([
      { op: 'put', key: 'w/a', value: '2', prev: '1', reason: 'live' },
      { op: 'delete', key: 'w/a', prev: '2', reason: 'live' },
    ])
  })
})

describe('rx-datasync against files', () => {
  it('reads a --filedb-config file and reports its errors with code 4', async () => {
    const dir = join(work, 'filedb')
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, 'data.yaml'), 'data:\n  - key: f/a\n    value: [1, 2]\n')
    await writeFile(join(dir, 'filedb.yaml'), 'configuration-paths: [data.yaml]\n')
    const ok = await cli(['list', '--filedb-config', 'filedb.yaml', '--json'], { cwd: dir })
    expect(ok.code).toBe(0)
    expect(jsonLines(ok.stdout)).toEqual([{ key: 'f/a', value: '[1,2]', revision: '1' }])
    const put = await cli(['put', 'f/a', 'x', '--filedb-config', 'filedb.yaml'], { cwd: dir })
    expect(put.code).toBe(1)
    await writeFile(join(dir, 'wrong.yaml'), 'configuration-paths: data.yaml\n')
    const wrong = await cli(['list'], { cwd: dir, env: { FILEDB_CONFIG: 'wrong.yaml' } })
    expect(wrong).toMatchObject({
      code: 4,
      stderr: `rx-datasync: ${join(dir, 'wrong.yaml')}:1: field 'configuration-paths': Invalid input: expected array, received string\n`,
    })
    const usage = await cli(['list', '--filedb-config'], { cwd: dir })
    expect(usage.code).toBe(2)
    expect(usage.stderr).toContain("Run 'rx-datasync list --help'")
  })

  it(
    'runs from a build (dist/cli/main.js) as an installed package does',
    { timeout: 300_000 },
    async () => {
      // A package-like tree inside the repository (so node_modules resolve): bin/, dist/,
      // package.json, and no tsconfig.json, so the launcher takes the build.
      await mkdir(join(ROOT, '.tmp'), { recursive: true })
      const tree = await mkdtemp(join(ROOT, '.tmp', 'cli-dist-'))
      try {
        await mkdir(join(tree, 'bin'), { recursive: true })
        await cp(BIN, join(tree, 'bin', 'rx-datasync.js'))
        await cp(join(ROOT, 'package.json'), join(tree, 'package.json'))
        // tsc emits even where another module has a type error; the launcher is what is tested.
        spawnSync(
          process.execPath,
          [
            join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
            '-p',
            'tsconfig.build.json',
            '--outDir',
            join(tree, 'dist'),
          ],
          { cwd: ROOT, encoding: 'utf8', timeout: 240_000 },
        )
        const bin = join(tree, 'bin', 'rx-datasync.js')
        const version = await cli(['--version'], { bin })
        expect(version).toMatchObject({ code: 0, stderr: '' })
        expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/)
        const data = join(tree, 'data.json')
        await writeFile(data, '{"data":[{"key":"built","text":"yes"}]}')
        expect(await cli(['get', 'built', '--store', `file://${data}`], { bin })).toMatchObject({
          code: 0,
          stdout: 'yes\n',
        })
        const forced = await cli(['--version'], { bin, env: { RX_DATASYNC_CLI: 'source' } })
        expect(forced.code).toBe(1) // no src/ in the tree
      } finally {
        await rm(tree, { recursive: true, force: true })
      }
    },
  )
})
