import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Subject, asyncScheduler } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEtcdConfig } from '../../src/backends/etcd/index.js'
import { loadRedisConfig } from '../../src/backends/redis/index.js'
import { run } from '../../src/cli/run.js'

let dir = ''
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rx-datasync-expand-'))
  await writeFile(join(dir, 'data.yaml'), 'data:\n  - key: k\n    text: v\n')
  await writeFile(join(dir, 'filedb-block.yaml'), 'configuration-paths:\n  - ${DATA_FILE}\n')
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function cli(argv: string[], env: Record<string, string>) {
  let stdout = ''
  let stderr = ''
  const code = await run(argv, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    stdin: { isTTY: true, async *[Symbol.asyncIterator]() {} },
    env,
    cwd: dir,
    signals: new Subject<string>(),
    scheduler: asyncScheduler,
  })
  return { code, stdout, stderr }
}

describe('--expand-env through the backends loaders', () => {
  it('expands variables in a configuration file only when asked', async () => {
    const args = ['get', 'k', '--filedb-config', 'filedb-block.yaml']
    expect(await cli([...args, '--expand-env'], { DATA_FILE: 'data.yaml' })).toEqual({
      code: 0,
      stdout: 'v\n',
      stderr: '',
    })
    const missing = await cli([...args, '--expand-env'], {})
    expect(missing.code).toBe(4)
    expect(missing.stderr).toBe(
      `rx-datasync: ${join(dir, 'filedb-block.yaml')}:2: field 'configuration-paths.0': environment variable DATA_FILE is not set; set it, or give a default with \${DATA_FILE:-default}\n`,
    )
  })

  it('reaches the etcd and redis loaders', async () => {
    await writeFile(
      join(dir, 'etcd.yaml'),
      'endpoints:\n  - ${ETCD_HOST}:2379\ndial-timeout: ${DIAL:-3s}\n',
    )
    expect(
      await loadEtcdConfig({
        file: join(dir, 'etcd.yaml'),
        env: { ETCD_HOST: '10.1.1.1' },
        expandEnv: true,
      }),
    ).toMatchObject({ endpoints: ['10.1.1.1:2379'], dialTimeout: '3s' })
    await writeFile(join(dir, 'redis.yaml'), 'endpoint: ${REDIS_ADDR}\ndb: ${REDIS_DB:-0}\n')
    expect(
      await loadRedisConfig({
        file: join(dir, 'redis.yaml'),
        env: { REDIS_ADDR: 'h:6390' },
        expandEnv: true,
      }),
    ).toMatchObject({ node: 'h:6390', db: 0 })
  })
})
