import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Subject, VirtualTimeScheduler, asyncScheduler } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  AuthError,
  CapabilityError,
  ConfigError,
  DatasyncError,
  UnavailableError,
} from '../../src/index.js'
import type { CliIo } from '../../src/cli/context.js'
import {
  EXIT,
  InterruptedError,
  NotFoundError,
  UsageError,
  exitCodeOf,
} from '../../src/cli/errors.js'
import { createProgress } from '../../src/cli/progress.js'
import { COMMANDS, run } from '../../src/cli/run.js'
import { chooseStore, parseStoreUrl, type StoreContext } from '../../src/cli/stores.js'
import { ValueFormat } from '../../src/cli/values.js'
import { pollUntil } from '../servers/index.js'

let dir = ''
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rx-datasync-cli-'))
  await writeFile(
    join(dir, 'data.yaml'),
    [
      'data:',
      '  - key: config/a',
      '    value: 1',
      '  - key: config/b',
      '    value: { x: 1 }',
      '  - key: other/c',
      '    text: "two\\nlines"',
      '',
    ].join('\n'),
  )
  await writeFile(join(dir, 'filedb.yaml'), 'configuration-paths: [data.yaml]\n')
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** Runs the command in this process with captured streams. */
function start(argv: string[], options: { env?: Record<string, string>; stdin?: string } = {}) {
  let stdout = ''
  let stderr = ''
  const signals = new Subject<string>()
  const stdinText = options.stdin
  const io: CliIo = {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    stdin: {
      isTTY: stdinText === undefined,
      async *[Symbol.asyncIterator]() {
        await Promise.resolve()
        if (stdinText !== undefined) yield Buffer.from(stdinText)
      },
    },
    env: options.env ?? {},
    cwd: dir,
    signals,
    scheduler: asyncScheduler,
  }
  const exit = run(argv, io)
  return {
    exit,
    signals,
    get stdout() {
      return stdout
    },
    get stderr() {
      return stderr
    },
  }
}

async function cli(argv: string[], options: { env?: Record<string, string>; stdin?: string } = {}) {
  const running = start(argv, options)
  const code = await running.exit
  return { code, stdout: running.stdout, stderr: running.stderr }
}

const context = (over: Partial<StoreContext> = {}): StoreContext => ({
  env: {},
  cwd: '/work',
  configFiles: {},
  expandEnv: false,
  ...over,
})

describe('store URLs', () => {
  it('parses etcd URLs: hosts, default port, credentials', () => {
    expect(parseStoreUrl('etcd://127.0.0.1:2379', '/')).toMatchObject({
      backend: 'etcd',
      options: { endpoints: ['127.0.0.1:2379'] },
    })
    expect(parseStoreUrl('etcd://a,b:3000,[::1]', '/').options).toEqual({
      endpoints: ['a:2379', 'b:3000', '[::1]:2379'],
    })
    const withAuth = parseStoreUrl('etcd://root:p%40ss@h:1/', '/')
    expect(withAuth.options).toEqual({
      endpoints: ['h:1'],
      auth: { username: 'root', password: 'p@ss' },
    })
    expect(withAuth.label).toBe('etcd://root:***@h:1/')
  })

  it('parses redis URLs: db, user, password, TLS', () => {
    expect(parseStoreUrl('redis://127.0.0.1:6390/2', '/').options).toEqual({
      node: '127.0.0.1:6390',
      db: 2,
    })
    expect(parseStoreUrl('redis://:secret@h', '/').options).toEqual({
      node: 'h:6379',
      password: 'secret',
    })
    expect(parseStoreUrl('rediss://app:pw@h:7000', '/').options).toEqual({
      node: 'h:7000',
      username: 'app',
      password: 'pw',
      tls: {},
    })
  })

  it('parses consul and file URLs', () => {
    expect(parseStoreUrl('consul://10.0.0.1', '/').options).toEqual({ address: '10.0.0.1:8500' })
    expect(parseStoreUrl('file:///etc/app/conf.d', '/').options).toEqual({
      paths: ['/etc/app/conf.d'],
    })
    expect(parseStoreUrl('file:conf.d/routes.yaml', '/srv').options).toEqual({
      paths: ['/srv/conf.d/routes.yaml'],
    })
  })

  it('refuses malformed URLs with a usage error that says why', () => {
    const cases: [string, RegExp][] = [
      ['etcd://', /expected a host/],
      ['etcd://h:99999', /'h:99999' is not host\[:port\]/],
      ['etcd://user@h', /give both user and password/],
      ['etcd://h/path', /no path/],
      ['redis://a,b', /one server/],
      ['redis://h/db', /database number/],
      ['redis://h?x=1', /query strings/],
      ['consul://t@h', /--consul-config/],
      ['file:', /expected a path/],
      ['file://remote-host/x', /file:\/\/\/absolute\/path/],
      ['gopher://h', /expected a URL \(etcd:\/\//],
      ['http://user:secret@h', /give the token in RX_DATASYNC_HTTP_TOKEN/],
      ['https://h/?a=1', /query strings and fragments/],
      ['nothing', /or a backend name/],
    ]
    for (const [spec, why] of cases) {
      let error: unknown
      try {
        parseStoreUrl(spec, '/')
      } catch (caught) {
        error = caught
      }
      expect(error, spec).toBeInstanceOf(UsageError)
      expect((error as Error).message, spec).toMatch(why)
    }
  })

  it('chooses --store, then a config flag, then RX_DATASYNC_STORE, then a config variable', () => {
    const env = { RX_DATASYNC_STORE: 'redis://h', ETCD_CONFIG: 'e.yaml' }
    expect(chooseStore('file:x', context({ env, configFiles: { filedb: 'f.yaml' } }))).toBe(
      'file:x',
    )
    expect(chooseStore(undefined, context({ env, configFiles: { filedb: 'f.yaml' } }))).toBe(
      'filedb',
    )
    expect(chooseStore(undefined, context({ env }))).toBe('redis://h')
    expect(chooseStore(undefined, context({ env: { ETCD_CONFIG: 'e.yaml' } }))).toBe('etcd')
    expect(() =>
      chooseStore(undefined, context({ env: { ETCD_CONFIG: 'e', REDIS_CONFIG: 'r' } })),
    ).toThrow(/several stores are configured \(ETCD_CONFIG, REDIS_CONFIG\)/)
    expect(() =>
      chooseStore(undefined, context({ configFiles: { etcd: 'e', consul: 'c' } })),
    ).toThrow(/--etcd-config, --consul-config/)
    expect(() => chooseStore(undefined, context())).toThrow(/no store given/)
  })
})

describe('exit codes', () => {
  it('maps every kind of failure to its documented code', () => {
    expect(EXIT).toEqual({
      ok: 0,
      failed: 1,
      usage: 2,
      notFound: 3,
      config: 4,
      unavailable: 5,
      interrupted: 130,
    })
    expect(exitCodeOf(new UsageError('x'))).toBe(2)
    expect(exitCodeOf(new NotFoundError('k'))).toBe(3)
    expect(exitCodeOf(new ConfigError('f.yaml', 'a', 'bad'))).toBe(4)
    expect(exitCodeOf(new AuthError('etcd', 'denied'))).toBe(4)
    expect(exitCodeOf(new UnavailableError('etcd', 'refused'))).toBe(5)
    expect(exitCodeOf(new DatasyncError('timeout', 'slow'))).toBe(5)
    expect(exitCodeOf(new CapabilityError('filedb', 'write'))).toBe(1)
    expect(exitCodeOf(new InterruptedError('SIGINT'))).toBe(130)
    expect(exitCodeOf(new Error('anything'))).toBe(1)
  })
})

describe('values', () => {
  const warnings: string[] = []
  const bytes = (text: string) => new TextEncoder().encode(text)

  it('shows values as text, JSON or base64', () => {
    const text = new ValueFormat('text', (w) => warnings.push(w))
    const json = new ValueFormat('json', (w) => warnings.push(w))
    const base64 = new ValueFormat('base64', (w) => warnings.push(w))
    expect(text.json('k', bytes('{"a":1}'))).toBe('{"a":1}')
    expect(json.json('k', bytes('{"a":1}'))).toEqual({ a: 1 })
    expect(base64.json('k', bytes('hi'))).toBe('aGk=')
    expect(text.inline('k', bytes('two\nlines'))).toBe('"two\\nlines"')
    expect(text.inline('k', bytes(''))).toBe('""')
    expect(json.text('k', bytes('{ "a": 1 }'))).toBe('{"a":1}')
    expect(warnings).toEqual([])
    expect(json.json('k', bytes('not json'))).toBe('not json')
    expect(warnings).toEqual(["key 'k': the value is not JSON; given as a string"])
  })

  it('reads put input in each encoding, refusing what does not decode', () => {
    expect(ValueFormat.encode('text', 'é')).toEqual(bytes('é'))
    expect(ValueFormat.encode('text', new Uint8Array([0xff]))).toEqual(new Uint8Array([0xff]))
    expect(ValueFormat.encode('base64', ' /w== \n')).toEqual(new Uint8Array([0xff]))
    expect(ValueFormat.encode('json', '{"a":1}')).toEqual(bytes('{"a":1}'))
    expect(() => ValueFormat.encode('base64', 'not base64!')).toThrow(UsageError)
    expect(() => ValueFormat.encode('json', '{a')).toThrow(/not valid JSON/)
  })
})

describe('progress', () => {
  it('draws one line on a terminal, at most every interval, and erases it', () => {
    const scheduler = new VirtualTimeScheduler()
    let written = ''
    const progress = createProgress(
      { isTTY: true, write: (t: string) => (written += t) },
      scheduler,
    )
    progress.update('1/3')
    progress.update('2/3') // within the interval: skipped
    scheduler.schedule(() => {
      progress.update('3/3')
    }, 150)
    scheduler.flush()
    progress.clear()
    expect(written).toBe('\r\u001b[K1/3\r\u001b[K3/3\r\u001b[K')
  })

  it('writes nothing when stderr is not a terminal', () => {
    let written = ''
    const progress = createProgress({ write: (t: string) => (written += t) }, asyncScheduler)
    progress.update('1/3', true)
    progress.clear()
    expect(written).toBe('')
  })
})

describe('the command, in process', () => {
  it('prints the help, and a help for each command', async () => {
    const help = await cli(['--help'])
    expect(help.code).toBe(0)
    for (const command of COMMANDS) expect(help.stdout).toContain(`  ${command.name} `)
    expect(help.stdout).toContain('5    store unavailable')
    for (const command of COMMANDS) {
      const own = await cli([command.name, '--help'])
      expect(own.code).toBe(0)
      expect(own.stdout).toMatch(new RegExp(`^Usage: rx-datasync ${command.name} `))
      expect(own.stdout).toContain('Exit codes:')
      expect(await cli(['help', command.name])).toEqual(own)
    }
    expect((await cli(['--version'])).stdout).toMatch(/^\d+\.\d+\.\d+/)
  })

  it('ends with usage errors (2) on stderr, pointing at the help', async () => {
    const none = await cli([])
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('Usage: rx-datasync <command>')
    const unknown = await cli(['fetch'])
    expect(unknown).toMatchObject({ code: 2, stdout: '' })
    expect(unknown.stderr).toContain("unknown command 'fetch'")
    const option = await cli(['get', 'k', '--bogus'])
    expect(option.code).toBe(2)
    expect(option.stderr).toBe(
      "rx-datasync: Unknown option '--bogus'\nRun 'rx-datasync get --help' for its options.\n",
    )
    expect((await cli(['get'])).stderr).toContain('get expects <key>, got nothing')
    expect((await cli(['get', 'a', 'b', '--store', 'file:x'])).code).toBe(2)
    expect((await cli(['list', '--store', 'ftp://x'])).code).toBe(2)
    expect((await cli(['list', '--store', 'file:x', '--timeout', 'soon'])).code).toBe(2)
    expect((await cli(['mirror', '--from', 'file:x'])).stderr).toContain('give both --from')
    expect((await cli(['list'])).stderr).toContain('no store given')
  })

  it('lists, gets and refuses writes on files', async () => {
    const store = ['--store', 'file:data.yaml']
    const listed = await cli(['list', ...store])
    expect(listed).toEqual({
      code: 0,
      stdout: 'config/a = 1\nconfig/b = {"x":1}\nother/c = "two\\nlines"\n',
      stderr: '',
    })
    expect((await cli(['list', 'config/', '--keys-only', ...store])).stdout).toBe(
      'config/a\nconfig/b\n',
    )
    const json = await cli(['list', 'config/', '--json', '--encoding', 'json', ...store])
    expect(
      json.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as unknown),
    ).toEqual([
      { key: 'config/a', value: 1, revision: '1' },
      { key: 'config/b', value: { x: 1 }, revision: '1' },
    ])
    expect(await cli(['get', 'other/c', ...store])).toEqual({
      code: 0,
      stdout: 'two\nlines\n',
      stderr: '',
    })
    expect(await cli(['get', 'missing', ...store])).toEqual({
      code: 3,
      stdout: '',
      stderr: "rx-datasync: key 'missing' not found\n",
    })
    const write = await cli(['put', 'config/a', '2', ...store])
    expect(write.code).toBe(1)
    expect(write.stderr).toMatch(/^rx-datasync: the filedb store does not support write/)
    const piped = await cli(['put', 'config/a', ...store], { stdin: 'from stdin' })
    expect(piped.code).toBe(1) // read from stdin, refused by the store
    expect((await cli(['put', 'config/a', ...store])).stderr).toContain('pipe it on stdin')
  })

  it('reads the store from a config flag or variable, and fails config errors with 4', async () => {
    expect((await cli(['get', 'config/a', '--filedb-config', 'filedb.yaml'])).stdout).toBe('1\n')
    expect(
      (await cli(['get', 'config/a'], { env: { FILEDB_CONFIG: join(dir, 'filedb.yaml') } })).stdout,
    ).toBe('1\n')
    expect(
      (await cli(['get', 'config/a'], { env: { RX_DATASYNC_STORE: 'file:data.yaml' } })).stdout,
    ).toBe('1\n')
    const missing = await cli(['list', '--filedb-config', 'nope.yaml'])
    expect(missing).toEqual({
      code: 4,
      stdout: '',
      stderr: `rx-datasync: ${join(dir, 'nope.yaml')}: the configuration file does not exist\n`,
    })
    await writeFile(join(dir, 'typo.yaml'), 'configuration-paths: [data.yaml]\nstatus-pth: s\n')
    const typo = await cli(['list', '--filedb-config', 'typo.yaml'])
    expect(typo.code).toBe(4)
    expect(typo.stderr).toBe(
      `rx-datasync: ${join(dir, 'typo.yaml')}:2: field 'status-pth': unknown field; did you mean 'status-path'?\n`,
    )
    const several = await cli(['list'], { env: { ETCD_CONFIG: 'e.yaml', FILEDB_CONFIG: 'f.yaml' } })
    expect(several.code).toBe(2)
    expect((await cli(['list', '--store', 'etcd'])).stderr).toContain(
      '--store etcd: name its configuration file with --etcd-config or ETCD_CONFIG',
    )
  })

  it('watches files until a signal, printing the resync and the changes', async () => {
    await writeFile(join(dir, 'live.json'), '{"data":[{"key":"k/1","value":"a"}]}')
    const watching = start(['watch', 'k/', '--json', '--store', 'file:live.json'])
    await pollUntil(() => watching.stdout.includes('"k/1"'), { timeoutMs: 30_000 })
    await writeFile(join(dir, 'live.json'), '{"data":[{"key":"k/2","value":"b"}]}')
    await pollUntil(() => watching.stdout.includes('"k/2"'), { timeoutMs: 30_000 })
    watching.signals.next('SIGTERM')
    expect(await watching.exit).toBe(0)
    expect(watching.stderr).toBe('')
    expect(
      watching.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as unknown),
    ).toEqual([
      { op: 'resync', reason: 'startup', revision: '1', keys: 1 },
      { op: 'put', key: 'k/1', value: '"a"', revision: '1', reason: 'startup' },
      { op: 'delete', key: 'k/1', prev: '"a"', revision: '2', reason: 'live' },
      { op: 'put', key: 'k/2', value: '"b"', revision: '2', reason: 'live' },
    ])
  })
})
