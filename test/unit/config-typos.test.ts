import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { loadConsulConfig } from '../../src/backends/consul/index.js'
import { loadEtcdConfig } from '../../src/backends/etcd/index.js'
import { loadFileDbConfig } from '../../src/backends/filedb/index.js'
import { loadNatsConfig } from '../../src/backends/nats/config.js'
import { loadPostgresConfig } from '../../src/backends/postgres/config.js'
import { loadRedisConfig } from '../../src/backends/redis/index.js'
import { closeNames, unknownFieldMessage } from '../../src/internal/config-fields.js'
import { parseConfig } from '../../src/internal/config.js'
import { configError, rejection, useTempDir } from './support.js'

// Issue 16: a misspelt required field was reported as the correct field missing at line 1, and
// Redis's shape detection then picked the wrong deployment. Every loader now reports the unknown
// field first, on its own line, with "did you mean" for close names.

const dir = useTempDir('rx-datasync-config-typos-')

interface Typo {
  readonly backend: string
  readonly load: (file: string) => Promise<unknown>
  readonly text: string
  readonly line: number
  readonly field: string
  readonly meant: string
}

const typos: readonly Typo[] = [
  {
    backend: 'etcd',
    load: (file) => loadEtcdConfig({ file, env: {} }),
    text: 'dial-timeout: 1s\nendpont: [127.0.0.1:2379]\n',
    line: 2,
    field: 'endpont',
    meant: "'endpoints'",
  },
  {
    backend: 'redis node',
    load: (file) => loadRedisConfig({ file, env: {} }),
    text: 'dial-timeout: 1s\nendpont: 127.0.0.1:6379\ndb: 2\n',
    line: 2,
    field: 'endpont',
    meant: "'endpoint'",
  },
  {
    backend: 'redis sentinel',
    load: (file) => loadRedisConfig({ file, env: {} }),
    text: 'endpoints: [127.0.0.1:26379]\nmaster-nme: mymaster\ndb: 1\n',
    line: 2,
    field: 'master-nme',
    meant: "'master-name'",
  },
  {
    backend: 'consul',
    load: (file) => loadConsulConfig({ file, env: {} }),
    text: 'token: t\nadress: 127.0.0.1:8500\n',
    line: 2,
    field: 'adress',
    meant: "'address'",
  },
  {
    backend: 'filedb',
    load: (file) => loadFileDbConfig({ file, env: {} }),
    text: '# data\nconfiguration-path: [conf.d]\n',
    line: 2,
    field: 'configuration-path',
    meant: "'configuration-paths'",
  },
  // The NATS and PostgreSQL loaders, built on loadConfigFile, get the same without code of their own.
  {
    backend: 'nats',
    load: (file) => loadNatsConfig({ file, env: {} }),
    text: 'servrs: [nats://127.0.0.1:4222]\n',
    line: 1,
    field: 'servrs',
    meant: "'servers'",
  },
  {
    backend: 'postgres',
    load: (file) => loadPostgresConfig({ file, env: {} }),
    text: 'host: 127.0.0.1\ndatabse: app\n',
    line: 2,
    field: 'databse',
    meant: "'database'",
  },
]

describe.each(typos)('the $backend loader, given a misspelt field', (typo) => {
  it('reports the unknown field on its own line with "did you mean", not a missing field', async () => {
    const file = await dir.file(`${typo.backend.replace(' ', '-')}.yaml`, typo.text)
    const error = await rejection(typo.load(file))
    expect(error.message).toBe(
      `${file}:${typo.line}: field '${typo.field}': unknown field; did you mean ${typo.meant}?`,
    )
    expect(error.source).toBe(`${file}:${typo.line}`)
    expect(error.field).toBe(typo.field)
  })
})

describe('Redis shape detection', () => {
  it('refuses a field of another shape, saying which shape was picked and why', async () => {
    const file = await dir.file('cluster-db.yaml', 'endpoints: [127.0.0.1:7000]\ndb: 2\n')
    const error = await rejection(loadRedisConfig({ file, env: {} }))
    expect(error.source).toBe(`${file}:2`)
    expect(error.field).toBe('db')
    expect(error.message).toMatch(
      /not a field of a cluster configuration \(the shape is cluster because neither master-name nor endpoint is set\)$/,
    )
  })

  it('checks nested fields before picking the shape', async () => {
    const file = await dir.file('tls.yaml', 'endpoint: 127.0.0.1:6379\ntls:\n  enabeld: true\n')
    const error = await rejection(loadRedisConfig({ file, env: {} }))
    expect(error.message).toBe(
      `${file}:3: field 'tls.enabeld': unknown field; did you mean 'enabled'?`,
    )
  })
})

describe('parseConfig (what every loader, present or coming, is built on)', () => {
  const strict = z.strictObject({
    endpoint: z.string(),
    'dial-timeout': z.string().optional(),
    retries: z.number(),
  })

  it('reports an unknown field before a missing one and before a wrong value on an earlier line', () => {
    const error = configError(() => parseConfig('retries: many\nendpont: x\n', 'a.yaml', strict))
    expect(error.message).toBe("a.yaml:2: field 'endpont': unknown field; did you mean 'endpoint'?")
  })

  it('reports the first unknown field in document order', () => {
    const error = configError(() =>
      parseConfig('endpoint: x\nretries: 1\nzzz: 1\naaa: 2\n', 'a.yaml', strict),
    )
    expect(error.field).toBe('zzz')
    expect(error.source).toBe('a.yaml:3')
  })

  it('treats a plain z.object as closed too (a typo is never ignored)', () => {
    const plain = z.object({ url: z.string(), pool: z.object({ size: z.number() }).optional() })
    const error = configError(() => parseConfig('url: x\npool:\n  sise: 3\n', 'n.yaml', plain))
    expect(error.message).toBe("n.yaml:3: field 'pool.sise': unknown field; did you mean 'size'?")
  })

  it('leaves a loose object open', () => {
    const loose = z.looseObject({ url: z.string() })
    expect(parseConfig('url: x\nextra: 1\n', 'l.yaml', loose)).toEqual({ url: 'x', extra: 1 })
  })

  it('looks through lists, transforms and unions', () => {
    const schema = z.strictObject({
      servers: z.array(z.strictObject({ host: z.string(), port: z.number() })),
      mode: z.union([
        z.strictObject({ kind: z.literal('a') }),
        z.strictObject({ size: z.number() }),
      ]),
      timeout: z.string().transform((text) => text.length),
    })
    const error = configError(() =>
      parseConfig(
        'servers:\n  - host: a\n    port: 1\n  - host: b\n    prot: 2\nmode: { kind: a }\ntimeout: x\n',
        's.yaml',
        schema,
      ),
    )
    expect(error.message).toBe(
      "s.yaml:5: field 'servers.1.prot': unknown field; did you mean 'port'?",
    )
    const union = configError(() =>
      parseConfig('servers: []\nmode: { knd: a }\ntimeout: x\n', 's.yaml', schema),
    )
    expect(union.message).toBe("s.yaml:2: field 'mode.knd': unknown field; did you mean 'kind'?")
  })
})

describe('did you mean', () => {
  const fields = ['endpoint', 'endpoints', 'dial-timeout', 'read-timeout', 'password', 'db']

  it('suggests the closest names only', () => {
    expect(closeNames('endpont', fields)).toEqual(['endpoint'])
    expect(closeNames('pasword', fields)).toEqual(['password'])
    expect(closeNames('paswrod', fields)).toEqual(['password'])
  })

  it('reads camelCase and snake_case as the kebab-case field', () => {
    expect(closeNames('dialTimeout', fields)).toEqual(['dial-timeout'])
    expect(closeNames('read_timeout', fields)).toEqual(['read-timeout'])
  })

  it('suggests nothing for a name far from every field, and lists the fields instead', () => {
    expect(closeNames('verbose', fields)).toEqual([])
    expect(unknownFieldMessage('verbose', ['b', 'a'])).toBe(
      'unknown field; the fields here are a, b',
    )
  })
})
