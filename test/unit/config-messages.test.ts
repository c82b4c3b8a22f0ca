import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { loadConsulConfig } from '../../src/backends/consul/index.js'
import { loadEtcdConfig } from '../../src/backends/etcd/index.js'
import { loadFileDbConfig } from '../../src/backends/filedb/index.js'
import { loadRedisConfig } from '../../src/backends/redis/index.js'
import { durationField, loadConfigFile, parseConfig } from '../../src/internal/config.js'
import { configError, rejection, useTempDir } from './support.js'

const dir = useTempDir('rx-datasync-config-messages-')
const { file } = dir

interface LoaderCase {
  readonly backend: string
  readonly load: (path: string) => Promise<unknown>
  /** A field whose value is wrong, and the message's end. */
  readonly wrongValue: { text: string; line: number; field: string; says: RegExp }
  /** A field of the wrong type. */
  readonly wrongType: { text: string; line: number; field: string; says: RegExp }
  /** A misspelt field. */
  readonly unknown: { text: string; line: number; field: string }
}

const loaders: readonly LoaderCase[] = [
  {
    backend: 'etcd',
    load: (path) => loadEtcdConfig({ argv: ['--etcd-config', path], env: {} }),
    wrongValue: {
      text: 'endpoints:\n  - 127.0.0.1:2379\ndial-timeout: soon\n',
      line: 3,
      field: 'dial-timeout',
      says: /expected a duration such as '500ms', '10s' or '1m'$/,
    },
    wrongType: {
      text: 'endpoints: 127.0.0.1:2379\n',
      line: 1,
      field: 'endpoints',
      says: /expected array, received string$/,
    },
    unknown: {
      text: 'endpoints: [127.0.0.1:2379]\ndial-timout: 1s\n',
      line: 2,
      field: 'dial-timout',
    },
  },
  {
    backend: 'redis',
    load: (path) => loadRedisConfig({ argv: ['--redis-config', path], env: {} }),
    wrongValue: {
      text: 'endpoint: localhost\n',
      line: 1,
      field: 'endpoint',
      says: /expected an address 'host:port'$/,
    },
    wrongType: {
      text: 'endpoint: 127.0.0.1:6379\ndb: zero\n',
      line: 2,
      field: 'db',
      says: /expected number, received string$/,
    },
    unknown: { text: 'endpoint: 127.0.0.1:6379\npasword: x\n', line: 2, field: 'pasword' },
  },
  {
    backend: 'consul',
    load: (path) => loadConsulConfig({ argv: ['--consul-config', path], env: {} }),
    wrongValue: {
      text: 'address: 127.0.0.1:8500\nconsistency: strong\n',
      line: 2,
      field: 'consistency',
      says: /expected one of "default"\|"consistent"\|"stale"$/,
    },
    wrongType: {
      text: 'address: 127.0.0.1:8500\nmax-concurrent-requests: many\n',
      line: 2,
      field: 'max-concurrent-requests',
      says: /expected number, received string$/,
    },
    unknown: { text: 'address: 127.0.0.1:8500\ndatacentre: dc1\n', line: 2, field: 'datacentre' },
  },
  {
    backend: 'filedb',
    load: (path) => loadFileDbConfig({ argv: ['--filedb-config', path], env: {} }),
    wrongValue: {
      text: '# data\nconfiguration-paths: []\n',
      line: 2,
      field: 'configuration-paths',
      says: /expected at least one file or directory$/,
    },
    wrongType: {
      text: 'configuration-paths: conf.d\n',
      line: 1,
      field: 'configuration-paths',
      says: /expected array, received string$/,
    },
    unknown: {
      text: 'configuration-paths: [conf.d]\nstatus-file: s.json\n',
      line: 2,
      field: 'status-file',
    },
  },
]

describe.each(loaders)('the $backend loader names file, line and field', (loader) => {
  it('for a wrong value', async () => {
    const path = await file(`${loader.backend}-value.yaml`, loader.wrongValue.text)
    const error = await rejection(loader.load(path))
    const { line, field, says } = loader.wrongValue
    expect(error.source).toBe(`${path}:${line}`)
    expect(error.field).toBe(field)
    expect(error.message.startsWith(`${path}:${line}: field '${field}': `)).toBe(true)
    expect(error.message).toMatch(says)
  })

  it('for a value of the wrong type', async () => {
    const path = await file(`${loader.backend}-type.yaml`, loader.wrongType.text)
    const error = await rejection(loader.load(path))
    const { line, field, says } = loader.wrongType
    expect(error.source).toBe(`${path}:${line}`)
    expect(error.field).toBe(field)
    expect(error.message.startsWith(`${path}:${line}: field '${field}': `)).toBe(true)
    expect(error.message).toMatch(says)
  })

  it('for an unknown field', async () => {
    const path = await file(`${loader.backend}-unknown.yaml`, loader.unknown.text)
    const error = await rejection(loader.load(path))
    const { line, field } = loader.unknown
    expect(error.message.startsWith(`${path}:${line}: field '${field}': unknown field; `)).toBe(
      true,
    )
    expect(error.field).toBe(field)
  })

  it('for a missing file', async () => {
    const path = join(dir.path, `${loader.backend}-missing.yaml`)
    const error = await rejection(loader.load(path))
    expect(error.message).toBe(`${path}: the configuration file does not exist`)
    expect(error.field).toBeUndefined()
    expect(error.code).toBe('config')
  })

  it('for YAML that does not parse, with its line', async () => {
    const path = await file(`${loader.backend}-syntax.yaml`, '# comment\nkey: [unclosed\n')
    const error = await rejection(loader.load(path))
    expect(error.message).toMatch(new RegExp(`^${escape(path)}:\\d+: not valid YAML: `))
  })
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

const schema = z.strictObject({
  name: z.string().optional(),
  endpoints: z.array(z.string()).optional(),
  retries: z.number().int().optional(),
  tls: z.strictObject({ enabled: z.boolean().optional(), 'cert-file': z.string() }).optional(),
  timeout: durationField.optional(),
  note: z.string().nullable().optional(),
})

const expand = (text: string, env: Record<string, string | undefined>) =>
  parseConfig(text, 'app.yaml', schema, { expandEnv: true, env })

describe('environment variables in configuration values (expandEnv)', () => {
  it('expands ${VAR} and ${VAR:-default}, several in one value', () => {
    const text =
      'name: ${APP}\nendpoints:\n  - ${HOST}:${PORT:-2379}\n  - ${OTHER:-10.0.0.2:2379}\n'
    expect(expand(text, { APP: 'routes', HOST: '10.0.0.1' })).toEqual({
      name: 'routes',
      endpoints: ['10.0.0.1:2379', '10.0.0.2:2379'],
    })
    expect(expand(text, { APP: 'r', HOST: 'h', PORT: '1', OTHER: 'o:2' }).endpoints).toEqual([
      'h:1',
      'o:2',
    ])
  })

  it('uses the default for an empty variable, and keeps a set one', () => {
    expect(expand('name: ${APP:-fallback}\n', { APP: '' })).toEqual({ name: 'fallback' })
    expect(expand('name: ${APP:-fallback}\n', { APP: 'given' })).toEqual({ name: 'given' })
    expect(expand('name: "x${EMPTY}y"\n', { EMPTY: '' })).toEqual({ name: 'xy' })
  })

  it('reads an unquoted value as YAML would, and keeps a quoted one a string', () => {
    const env = { N: '3', ON: 'true', DURATION: '5s' }
    expect(
      expand('retries: ${N}\ntimeout: ${DURATION}\ntls:\n  enabled: ${ON}\n  cert-file: c\n', env),
    ).toEqual({ retries: 3, timeout: '5s', tls: { enabled: true, 'cert-file': 'c' } })
    expect(expand('name: "${N}"\n', env)).toEqual({ name: '3' })
    expect(expand("name: '${ON}'\n", env)).toEqual({ name: 'true' })
    expect(expand('note: ${NOTHING:-}\n', {})).toEqual({ note: null })
  })

  it('never adds structure: a value holding YAML stays a string', () => {
    const env = { TRICK: 'a: b\nretries: 9', LIST: '[1, 2]' }
    expect(expand('name: ${TRICK}\n', env)).toEqual({ name: 'a: b\nretries: 9' })
    expect(expand('name: ${LIST}\n', env)).toEqual({ name: '[1, 2]' })
  })

  it('leaves field names alone, and $${ is a literal ${', () => {
    expect(expand('name: $${NOT_A_VARIABLE}\n', {})).toEqual({ name: '${NOT_A_VARIABLE}' })
    const error = configError(() => expand('${FIELD}: 1\n', { FIELD: 'name' }))
    expect(error.field).toBe('${FIELD}')
    expect(error.message).toContain('unknown field')
  })

  it('is off unless asked for', () => {
    expect(parseConfig('name: ${APP}\n', 'app.yaml', schema)).toEqual({ name: '${APP}' })
    expect(parseConfig('name: ${APP}\n', 'app.yaml', schema, { env: { APP: 'x' } })).toEqual({
      name: '${APP}',
    })
  })

  it('names the file, line, field and variable when a variable is not set', () => {
    const text = 'name: app\ntls:\n  enabled: true\n  cert-file: ${CERT_FILE}\n'
    const error = configError(() => expand(text, {}))
    expect(error.source).toBe('app.yaml:4')
    expect(error.field).toBe('tls.cert-file')
    expect(error.message).toBe(
      "app.yaml:4: field 'tls.cert-file': environment variable CERT_FILE is not set; set it, or give a default with ${CERT_FILE:-default}",
    )
  })

  it('names a list item by its index', () => {
    const error = configError(() => expand('endpoints:\n  - ${A}\n  - ${B}\n', { A: 'a:1' }))
    expect(error.source).toBe('app.yaml:3')
    expect(error.field).toBe('endpoints.1')
    expect(error.message).toContain('environment variable B is not set')
  })

  it('refuses a malformed reference', () => {
    const bad = configError(() => expand('name: ${1X}\n', {}))
    expect(bad.message).toBe(
      "app.yaml:1: field 'name': '${1X}' is not a variable reference; expected ${NAME} or ${NAME:-default}",
    )
    const open = configError(() => expand('name: "${X"\n', { X: 'x' }))
    expect(open.message).toMatch(/^app\.yaml:1: field 'name': '\$\{' without a closing '\}'/)
  })

  it('validates the expanded value, naming its line', () => {
    const error = configError(() => expand('name: a\ntimeout: ${T}\n', { T: 'soon' }))
    expect(error.message).toBe(
      "app.yaml:2: field 'timeout': expected a duration such as '500ms', '10s' or '1m'",
    )
  })

  it('works through loadConfigFile, naming the file path', async () => {
    const path = await file('expand.yaml', '# app\nname: ${APP_NAME}\n')
    expect(await loadConfigFile(path, schema, { expandEnv: true, env: { APP_NAME: 'x' } })).toEqual(
      {
        name: 'x',
      },
    )
    const error = await rejection(loadConfigFile(path, schema, { expandEnv: true, env: {} }))
    expect(error.message).toBe(
      `${path}:2: field 'name': environment variable APP_NAME is not set; set it, or give a default with \${APP_NAME:-default}`,
    )
  })

  it('reads process.env by default', () => {
    const variable = `RX_DATASYNC_EXPAND_${String(process.pid)}`
    process.env[variable] = 'from-process'
    try {
      expect(
        parseConfig(`name: \${${variable}}\n`, 'app.yaml', schema, { expandEnv: true }),
      ).toEqual({ name: 'from-process' })
    } finally {
      Reflect.deleteProperty(process.env, variable)
    }
  })
})
