import { X509Certificate, createPrivateKey } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { LineCounter, parseDocument } from 'yaml'
import { z } from 'zod'
import { ConfigError, describe } from '../../core/errors.js'
import {
  configPath,
  durationField,
  loadConfigFile,
  type ConfigLookup,
} from '../../internal/config.js'
import { ENDPOINT, type EtcdStoreOptions } from './options.js'

export type { ConfigLookup }

/**
 * Where {@link loadEtcdConfig} looks.
 * @deprecated The same type as {@link ConfigLookup}, which every backend's loader takes.
 */
export type EtcdConfigLookup = ConfigLookup

const schema = z.strictObject({
  endpoints: z
    .array(z.string().min(1, 'expected a non-empty endpoint such as 127.0.0.1:2379'))
    .optional(),
  'dial-timeout': durationField.optional(),
  'operation-timeout': durationField.optional(),
  'insecure-transport': z.boolean().optional(),
  'insecure-skip-tls-verify': z.boolean().optional(),
  'cert-file': z.string().min(1, 'expected a file path').optional(),
  'key-file': z.string().min(1, 'expected a file path').optional(),
  'ca-file': z.string().min(1, 'expected a file path').optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  'auto-compact': durationField.optional(),
  'resync-after-reconnect': z.boolean().optional(),
  'allow-delayed-start': z.boolean().optional(),
  'reconnect-interval': durationField.optional(),
  'session-ttl': z
    .number('expected a whole number of seconds')
    .int('expected a whole number of seconds')
    .nonnegative('expected a whole number of seconds')
    .optional(),
  // Read so that the Go original's files load; `true` is refused (see EXPAND_ENV_REFUSED).
  'expand-env-variables': z.boolean().optional(),
})

/**
 * Why `expand-env-variables: true` (or `ETCD_EXPAND_ENV_VARS`) is refused: in the Go original it
 * made the JSON serializer replace `${VAR}` and `$VAR` in every value read from etcd, which is the
 * codec's business here, and a store that silently changed values would break `prev` and the
 * equality checks. Refused rather than ignored, so a value that relied on it does not quietly
 * arrive unexpanded.
 */
const EXPAND_ENV_REFUSED =
  'not supported: the Go original expanded ${VAR} and $VAR in the JSON values it read from etcd; ' +
  'rx-datasync hands values to your codec as stored. Expand them in the codec that decodes ' +
  'them, and remove this (false is accepted). To expand ${VAR} in this configuration file, ' +
  "use the loader's expandEnv option (--expand-env in the CLI)"

/** The configuration file as written: the Go original's kebab-case fields. */
type EtcdConfigFile = z.infer<typeof schema>

/**
 * Loads the etcd store's options from the YAML file named by the `--etcd-config` flag (first)
 * or the `ETCD_CONFIG` environment variable, with the fields the Go original (cn-infra) reads:
 *
 * ```yaml
 * endpoints: [10.0.0.1:2379, 10.0.0.2:2379]   # else ETCD_ENDPOINTS / ETCDV3_ENDPOINTS (comma lists), else 127.0.0.1:2379
 * dial-timeout: 1s
 * operation-timeout: 3s
 * insecure-transport: false                   # true: plain text, whatever the files say
 * insecure-skip-tls-verify: false
 * cert-file: client.pem                       # TLS is on when any of the three is set;
 * key-file: client-key.pem                    # relative paths start at the file's directory
 * ca-file: ca.pem
 * username: app
 * password: secret
 * auto-compact: 60m                           # 0 or absent: off
 * resync-after-reconnect: false
 * allow-delayed-start: false
 * reconnect-interval: 2s
 * session-ttl: 5                              # whole seconds
 * expand-env-variables: false                 # true is refused: see below
 * ```
 *
 * Durations are strings in Go's form such as `'500ms'`, `'10s'`, `'5m'`, `'1m30s'`, or
 * milliseconds as numbers; a 0 keeps the default, as in the Go original. The certificate files
 * are read here. `expand-env-variables: true` (and a non-empty `ETCD_EXPAND_ENV_VARS`) is refused
 * with the reason: the Go original expanded variables in the values read from etcd, which is a
 * codec's job here; `${VAR}` in this file is expanded with the lookup's `expandEnv`.
 *
 * Resolves to `undefined` when neither the flag nor the variable names a file (the Go original
 * then leaves etcd disabled).
 *
 * @example
 * ```ts
 * import { createEtcdStore, loadEtcdConfig } from 'rx-datasync/etcd'
 * const options = await loadEtcdConfig()   // node app.js --etcd-config /etc/app/etcd.yaml
 * const store = createEtcdStore(options ?? {})
 * ```
 *
 * @throws ConfigError naming the file, the line and the field, and what was expected: an unknown
 * field, a wrong type, a file that cannot be read.
 */
export async function loadEtcdConfig(
  lookup: ConfigLookup = {},
): Promise<EtcdStoreOptions | undefined> {
  const file = configPath({ flag: '--etcd-config', env: 'ETCD_CONFIG' }, lookup)
  if (file === undefined) return undefined
  const config = await loadConfigFile(file, schema, lookup)
  const lines = await fieldLines(file)
  const at = (field: string) => {
    const line = lines.get(field)
    return line === undefined ? file : `${file}:${line}`
  }
  const env = lookup.env ?? process.env
  if (config['expand-env-variables'] === true) {
    throw new ConfigError(at('expand-env-variables'), 'expand-env-variables', EXPAND_ENV_REFUSED)
  }
  if ((env.ETCD_EXPAND_ENV_VARS ?? '') !== '') {
    throw new ConfigError('ETCD_EXPAND_ENV_VARS', undefined, EXPAND_ENV_REFUSED)
  }

  const endpoints = config.endpoints?.length ? config.endpoints : fromEnv(env)
  for (const [index, endpoint] of (endpoints ?? []).entries()) {
    if (!ENDPOINT.test(endpoint)) {
      throw new ConfigError(
        config.endpoints?.length ? at('endpoints') : 'ETCD_ENDPOINTS',
        config.endpoints?.length ? `endpoints.${index}` : undefined,
        `expected 'host:port', 'http://host:port' or 'https://host:port', got '${endpoint}'`,
      )
    }
  }

  if ((config['cert-file'] === undefined) !== (config['key-file'] === undefined)) {
    const missing = config['cert-file'] === undefined ? 'cert-file' : 'key-file'
    const given = missing === 'cert-file' ? 'key-file' : 'cert-file'
    throw new ConfigError(
      at(given),
      missing,
      `expected ${missing} too: a client certificate needs its key`,
    )
  }
  if ((config.username === undefined) !== (config.password === undefined)) {
    const missing = config.username === undefined ? 'username' : 'password'
    const given = missing === 'username' ? 'password' : 'username'
    throw new ConfigError(at(given), missing, `expected ${missing} too: authentication needs both`)
  }
  if (config.username === '')
    throw new ConfigError(at('username'), 'username', 'expected a non-empty user name')

  const read = async (field: 'cert-file' | 'key-file' | 'ca-file'): Promise<Buffer | undefined> => {
    const name = config[field]
    if (name === undefined) return undefined
    const full = path.resolve(path.dirname(file), name)
    let content: Buffer
    try {
      content = await readFile(full)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      throw new ConfigError(
        at(field),
        field,
        code === 'ENOENT'
          ? `the file ${full} does not exist`
          : `cannot read ${full} (${code ?? String(error)})`,
        { cause: error },
      )
    }
    try {
      if (field === 'key-file') createPrivateKey(content)
      else new X509Certificate(content)
    } catch (error) {
      throw new ConfigError(
        at(field),
        field,
        `${full} is not a PEM ${field === 'key-file' ? 'private key' : 'certificate'} (${describe(error)})`,
        { cause: error },
      )
    }
    return content
  }

  const tlsWanted =
    config['insecure-transport'] !== true &&
    (config['cert-file'] !== undefined ||
      config['key-file'] !== undefined ||
      config['ca-file'] !== undefined ||
      config['insecure-skip-tls-verify'] === true)
  const [cert, key, ca] = tlsWanted
    ? await Promise.all([read('cert-file'), read('key-file'), read('ca-file')])
    : [undefined, undefined, undefined]

  const duration = (field: 'dial-timeout' | 'operation-timeout' | 'reconnect-interval') => {
    const value = config[field]
    return value === undefined || value === 0 ? undefined : value
  }
  const dialTimeout = duration('dial-timeout')
  const operationTimeout = duration('operation-timeout')
  const reconnectInterval = duration('reconnect-interval')
  const autoCompact = config['auto-compact']
  const sessionTtl = config['session-ttl']

  return {
    ...(endpoints ? { endpoints } : {}),
    ...(dialTimeout !== undefined ? { dialTimeout } : {}),
    ...(operationTimeout !== undefined ? { operationTimeout } : {}),
    ...(tlsWanted
      ? {
          tls: {
            ...(ca ? { ca } : {}),
            ...(cert ? { cert } : {}),
            ...(key ? { key } : {}),
            insecureSkipVerify: config['insecure-skip-tls-verify'] === true,
          },
        }
      : {}),
    ...(config.username !== undefined && config.password !== undefined
      ? { auth: { username: config.username, password: config.password } }
      : {}),
    ...(autoCompact !== undefined ? { autoCompact } : {}),
    resyncAfterReconnect: config['resync-after-reconnect'] === true,
    allowDelayedStart: config['allow-delayed-start'] === true,
    ...(reconnectInterval !== undefined ? { reconnectInterval } : {}),
    ...(sessionTtl !== undefined && sessionTtl > 0
      ? { sessionTtl: `${sessionTtl}s` as const }
      : {}),
  }
}

/** ETCD_ENDPOINTS, then ETCDV3_ENDPOINTS, as comma-separated lists (the Go original's fallbacks). */
function fromEnv(env: Readonly<Record<string, string | undefined>>): string[] | undefined {
  for (const name of ['ETCD_ENDPOINTS', 'ETCDV3_ENDPOINTS']) {
    const list = (env[name] ?? '')
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part !== '')
    if (list.length > 0) return list
  }
  return undefined
}

/** The line of each top-level field, for errors found after validation. */
async function fieldLines(file: string): Promise<Map<string, number>> {
  const lines = new Map<string, number>()
  const lineCounter = new LineCounter()
  const document = parseDocument(await readFile(file, 'utf8'), { lineCounter })
  const fields: (keyof EtcdConfigFile)[] = Object.keys(schema.shape) as (keyof EtcdConfigFile)[]
  for (const field of fields) {
    const node = document.get(field, true) as { range?: [number, number, number] } | undefined
    const offset = node?.range?.[0]
    if (offset !== undefined) lines.set(field, lineCounter.linePos(offset).line)
  }
  return lines
}
