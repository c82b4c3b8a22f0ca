/**
 * The package as a user gets it: built and packed (npm pack) in a staging copy of the package
 * (this checkout's dist/ is never touched), checked by publint and are-the-types-wrong, then
 * installed into a fresh CommonJS project and a fresh ESM project that have nothing else but
 * rxjs and ioredis. Each imports the core and `rx-datasync/redis`, type-checks the README's
 * Usage samples, and runs against a redis-server from the harness; importing a backend whose
 * client is not installed says what to install, in the library and in the command.
 */
import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, useServer } from '../servers/index.js'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = (name: string) => join(ROOT, 'node_modules', '.bin', name)

interface Outcome {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command to its end; never throws for a non-zero exit (the outcome says it). */
async function sh(file: string, args: readonly string[], cwd: string): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run(file, [...args], {
      cwd,
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, npm_config_update_notifier: 'false', NODE_OPTIONS: '' },
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string }
    return {
      code: typeof failed.code === 'number' ? failed.code : 1,
      stdout: failed.stdout ?? '',
      stderr: failed.stderr ?? '',
    }
  }
}

async function ok(file: string, args: readonly string[], cwd: string): Promise<string> {
  const outcome = await sh(file, args, cwd)
  if (outcome.code !== 0) {
    throw new Error(
      `${file} ${args.join(' ')} exited ${outcome.code}\n${outcome.stdout}\n${outcome.stderr}`,
    )
  }
  return outcome.stdout
}

/** The README's Usage samples (its first two ts blocks), with the names they leave to the reader. */
async function readmeSamples(): Promise<string> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  const usage = readme.slice(readme.indexOf('## Usage'))
  const blocks = [...usage.matchAll(/```ts\n([\s\S]*?)```/g)].slice(0, 2).map((m) => m[1] ?? '')
  expect(blocks).toHaveLength(2)
  return [
    "import type { KeyValue } from 'rx-datasync'",
    'declare function replaceAll(items: readonly KeyValue<Route>[]): void',
    'declare function apply(key: string, prev: Route | undefined, value: Route | undefined): void',
    ...blocks,
  ].join('\n')
}

let work = ''
let tarball = ''

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'rx-datasync-package-'))
  const stage = join(work, 'stage')
  await mkdir(stage)
  for (const entry of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'src', 'bin']) {
    await cp(join(ROOT, entry), join(stage, entry), { recursive: true })
  }
  await ok(
    BIN('tsc'),
    ['-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(stage, 'dist')],
    ROOT,
  )
  await ok('npm', ['pack', '--pack-destination', work, '--ignore-scripts'], stage)
  const packed = (await readdir(work)).find((name) => name.endsWith('.tgz'))
  if (packed === undefined) throw new Error('npm pack made no tarball')
  tarball = join(work, packed)
}, 600_000)

afterAll(async () => {
  if (work !== '') await rm(work, { recursive: true, force: true })
})

describe('the packed tarball', () => {
  it('passes publint and are-the-types-wrong', async () => {
    const lint = await sh(BIN('publint'), ['run', join(work, 'stage'), '--strict'], ROOT)
    expect(lint.code, lint.stdout + lint.stderr).toBe(0)
    expect(lint.stdout + lint.stderr).not.toMatch(/warning|error|suggestion/i)
    // require() of the ESM build is what Node 20.19+ does for CommonJS callers (and TypeScript
    // 5.8+ under module node20/nodenext), so a CommonJS resolution reaching ESM is no problem.
    const types = await sh(
      BIN('attw'),
      [
        tarball,
        '--profile',
        'node16',
        '--ignore-rules',
        'cjs-resolves-to-esm',
        '--format',
        'table-flipped',
      ],
      ROOT,
    )
    expect(types.code, types.stdout + types.stderr).toBe(0)
    // attw exits non-zero on any problem not ignored.
    expect(types.stdout).toContain('rx-datasync/redis')
  })

  it('ships the licence, the changelog, declaration maps and the sources they point at', async () => {
    const listing = await ok('tar', ['-tzf', tarball], work)
    for (const file of [
      'package/LICENSE',
      'package/CHANGELOG.md',
      'package/dist/index.d.ts.map',
      'package/src/index.ts',
      'package/dist/backends/redis/index.js',
    ]) {
      expect(listing.split('\n'), file).toContain(file)
    }
  })
})

describe('fresh consumer projects', () => {
  const redis = useServer(() => startRedis())

  /** A project with nothing but the tarball, rxjs, ioredis and TypeScript. */
  async function project(name: string, type: 'commonjs' | 'module'): Promise<string> {
    const dir = join(work, name)
    await mkdir(dir)
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name, private: true, type }))
    await ok(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        '--ignore-scripts',
        tarball,
        'rxjs@^7.8.1',
        'ioredis@^6.0.0',
        'typescript@^5.9.3',
        '@types/node@^20.19.0',
      ],
      dir,
    )
    return dir
  }

  const program = (load: string) => `${load}
const store = createRedisStore({ node: process.argv[2] })
const sync = createDatasync(store)
const seen = []
sync.register('routes', { prefixes: ['pkg/'] }).events$.subscribe((event) => {
  if (event.kind === 'resync') seen.push(...event.items.map((item) => item.key))
  event.done()
  if (seen.length > 0) {
    sync.close()
    store.close().then(() => {
      console.log(JSON.stringify({ keys: seen, core: typeof createMemoryStore }))
    })
  }
})
store.put('pkg/a', new TextEncoder().encode('1')).subscribe({
  complete: () => sync.start(),
})
`

  it('CommonJS: require() of the core and rx-datasync/redis runs against Redis', async () => {
    const dir = await project('consumer-cjs', 'commonjs')
    await writeFile(
      join(dir, 'main.js'),
      program(
        "const { createDatasync, createMemoryStore } = require('rx-datasync')\nconst { createRedisStore } = require('rx-datasync/redis')",
      ),
    )
    const out = await ok(process.execPath, ['main.js', `127.0.0.1:${redis().port}`], dir)
    expect(JSON.parse(out)).toEqual({ keys: ['pkg/a'], core: 'function' })
    // Types through require: TypeScript's CommonJS view of the package.
    await writeFile(
      join(dir, 'check.cts'),
      "import sync = require('rx-datasync')\nimport redis = require('rx-datasync/redis')\nconst store: sync.KvStore = redis.createRedisStore({ node: '127.0.0.1:6379' })\nexport = store\n",
    )
    await ok(
      join(dir, 'node_modules', '.bin', 'tsc'),
      [
        '--noEmit',
        '--strict',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--skipLibCheck',
        'check.cts',
      ],
      dir,
    )
  })

  it('ESM: imports run against Redis and the README samples type-check', async () => {
    const dir = await project('consumer-esm', 'module')
    await writeFile(
      join(dir, 'main.js'),
      program(
        "import { createDatasync, createMemoryStore } from 'rx-datasync'\nimport { createRedisStore } from 'rx-datasync/redis'",
      ),
    )
    const out = await ok(process.execPath, ['main.js', `127.0.0.1:${redis().port}`], dir)
    expect(JSON.parse(out)).toEqual({ keys: ['pkg/a'], core: 'function' })
    await writeFile(join(dir, 'readme.ts'), await readmeSamples())
    await ok(
      join(dir, 'node_modules', '.bin', 'tsc'),
      [
        '--noEmit',
        '--strict',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--target',
        'es2022',
        'readme.ts',
      ],
      dir,
    )
  })

  it('a backend whose client is not installed says what to install, in the library and the command', async () => {
    const dir = join(work, 'consumer-esm')
    const imported = await sh(process.execPath, ['-e', "import('rx-datasync/etcd')"], dir)
    expect(imported.code).not.toBe(0)
    expect(imported.stderr).toContain(
      'rx-datasync/etcd needs the etcd3 client, which is not installed: run `npm install etcd3`',
    )
    const command = await sh(
      join(dir, 'node_modules', '.bin', 'rx-datasync'),
      ['get', 'k', '--store', 'etcd://127.0.0.1:2379'],
      dir,
    )
    expect(command.code).toBe(4)
    expect(command.stderr).toContain('run `npm install etcd3`')
  })
})
