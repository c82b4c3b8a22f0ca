import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { LineCounter, parseDocument } from 'yaml'
import { z } from 'zod'
import { ConfigError } from '../../core/errors.js'
import {
  configPath,
  durationField,
  loadConfigFile,
  readConfigText,
  type ConfigLookup,
} from '../../internal/config.js'
import { resolveOptions, type PostgresStoreOptions, type PostgresTlsOptions } from './options.js'

export type { ConfigLookup }

/** The YAML path of each option, for errors that point at the line. */
const YAML_PATH: Readonly<Record<string, readonly string[]>> = {
  connectionString: ['url'],
  host: ['host'],
  port: ['port'],
  database: ['database'],
  user: ['user'],
  poolSize: ['pool-size'],
  statementTimeout: ['statement-timeout'],
  connectTimeout: ['connect-timeout'],
  table: ['table'],
  pollInterval: ['poll-interval'],
  reapInterval: ['reap-interval'],
  operationTimeout: ['operation-timeout'],
  reconnectInterval: ['reconnect-interval'],
  autoCompact: ['auto-compact'],
  pageSize: ['page-size'],
  tls: ['tls'],
  'tls.cert': ['tls', 'cert-file'],
  'tls.key': ['tls', 'key-file'],
}

const text = z.string().min(1, 'expected a non-empty string')

const fileSchema = z
  .object({
    url: text.optional(),
    host: text.optional(),
    port: z.number().int().min(1).max(65_535).optional(),
    database: text.optional(),
    user: text.optional(),
    password: z.string().optional(),
    'password-file': text.optional(),
    tls: z
      .object({
        'ca-file': text.optional(),
        'cert-file': text.optional(),
        'key-file': text.optional(),
        'insecure-skip-verify': z.boolean().optional(),
      })
      .strict()
      .optional(),
    'pool-size': z.number().int().min(1).optional(),
    'statement-timeout': durationField.optional(),
    'connect-timeout': durationField.optional(),
    table: text.optional(),
    'poll-interval': durationField.optional(),
    'reap-interval': durationField.optional(),
    'operation-timeout': durationField.optional(),
    'reconnect-interval': durationField.optional(),
    'auto-compact': durationField.optional(),
    'page-size': z.number().int().min(1).optional(),
    'resync-after-reconnect': z.boolean().optional(),
  })
  .strict()

type FileConfig = z.infer<typeof fileSchema>

/** The options a file gives, TLS files not read yet (their names stand in for the contents). */
function storeOptions(file: FileConfig): PostgresStoreOptions {
  const tls = file.tls
  const tlsOptions: PostgresTlsOptions | undefined =
    tls === undefined
      ? undefined
      : {
          ...(tls['ca-file'] === undefined ? {} : { ca: tls['ca-file'] }),
          ...(tls['cert-file'] === undefined ? {} : { cert: tls['cert-file'] }),
          ...(tls['key-file'] === undefined ? {} : { key: tls['key-file'] }),
          insecureSkipVerify: tls['insecure-skip-verify'] === true,
        }
  const pick = <K extends keyof FileConfig>(key: K) => file[key]
  const options: Record<string, unknown> = {
    connectionString: pick('url'),
    host: pick('host'),
    port: pick('port'),
    database: pick('database'),
    user: pick('user'),
    password: pick('password'),
    tls: tlsOptions,
    poolSize: pick('pool-size'),
    statementTimeout: pick('statement-timeout'),
    connectTimeout: pick('connect-timeout'),
    table: pick('table'),
    pollInterval: pick('poll-interval'),
    reapInterval: pick('reap-interval'),
    operationTimeout: pick('operation-timeout'),
    reconnectInterval: pick('reconnect-interval'),
    autoCompact: pick('auto-compact'),
    pageSize: pick('page-size'),
    resyncAfterReconnect: pick('resync-after-reconnect'),
  }
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined))
}

const MARK = 'postgres configuration'

/**
 * Loads the PostgreSQL store's options from the YAML (or JSON) file named by the
 * `--postgres-config` flag (first) or the `POSTGRES_CONFIG` environment variable:
 *
 * ```yaml
 * url: postgres://app@db.internal:5432/app?sslmode=verify-full   # or the fields below
 * host: db.internal
 * port: 5432
 * database: app
 * user: app
 * password-file: /run/secrets/pg-password   # or password: ...; relative to this file
 * tls:                                      # TLS is on when tls is given
 *   ca-file: ca.pem                         # relative paths start at this file's directory
 *   cert-file: client.pem
 *   key-file: client-key.pem
 *   insecure-skip-verify: false
 * pool-size: 10
 * statement-timeout: 10s
 * connect-timeout: 5s
 * table: rx_datasync_kv
 * poll-interval: 5s
 * reap-interval: 500ms
 * operation-timeout: 15s
 * reconnect-interval: 2s
 * auto-compact: 0                           # 0: off
 * page-size: 5000
 * resync-after-reconnect: false
 * ```
 *
 * The fields win over what the URL says. Resolves to `undefined` when neither the flag nor the
 * variable names a file.
 *
 * @throws ConfigError naming the file, the line and the field: an unknown field, a wrong value,
 *   password and password-file both, a file that cannot be read or is empty.
 */
export async function loadPostgresConfig(
  lookup: ConfigLookup = {},
): Promise<PostgresStoreOptions | undefined> {
  const file = configPath({ flag: '--postgres-config', env: 'POSTGRES_CONFIG' }, lookup)
  if (file === undefined) return undefined
  const schema = fileSchema.superRefine((config, context) => {
    if (config.password !== undefined && config['password-file'] !== undefined) {
      context.addIssue({
        code: 'custom',
        path: ['password-file'],
        message: 'give password or password-file, not both',
      })
      return
    }
    try {
      resolveOptions(storeOptions(config), MARK)
    } catch (error) {
      if (!(error instanceof ConfigError) || error.field === undefined) throw error
      const prefix = `${MARK}: field '${error.field}': `
      context.addIssue({
        code: 'custom',
        path: [...(YAML_PATH[error.field] ?? [])],
        message: error.message.startsWith(prefix)
          ? error.message.slice(prefix.length)
          : error.message,
      })
    }
  })
  const config = await loadConfigFile(file, schema, lookup)
  const options = storeOptions(config)
  const lines = await fieldLines(file)
  const read = async (field: string, yamlPath: readonly string[], name: string) => {
    const full = path.resolve(path.dirname(file), name)
    const line = lines(yamlPath)
    const at = line === undefined ? file : `${file}:${line}`
    let content: string
    try {
      content = await readFile(full, 'utf8')
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      throw new ConfigError(
        at,
        field,
        code === 'ENOENT'
          ? `the file ${full} does not exist`
          : `cannot read ${full} (${code ?? String(error)})`,
        { cause: error },
      )
    }
    if (content.trim() === '') throw new ConfigError(at, field, `${full} is empty`)
    return content
  }
  const passwordFile = config['password-file']
  const password =
    passwordFile === undefined
      ? options.password
      : (await read('password-file', ['password-file'], passwordFile)).trim()
  const tls = config.tls
  const tlsOptions: PostgresTlsOptions | undefined =
    tls === undefined
      ? undefined
      : {
          ...(tls['ca-file'] === undefined
            ? {}
            : { ca: await read('tls.ca-file', ['tls', 'ca-file'], tls['ca-file']) }),
          ...(tls['cert-file'] === undefined
            ? {}
            : { cert: await read('tls.cert-file', ['tls', 'cert-file'], tls['cert-file']) }),
          ...(tls['key-file'] === undefined
            ? {}
            : { key: await read('tls.key-file', ['tls', 'key-file'], tls['key-file']) }),
          insecureSkipVerify: tls['insecure-skip-verify'] === true,
        }
  return {
    ...options,
    ...(password === undefined ? {} : { password }),
    ...(tlsOptions === undefined ? {} : { tls: tlsOptions }),
  }
}

/** The line of a field (by its YAML path) in the file, for errors found after validation. */
async function fieldLines(
  file: string,
): Promise<(yamlPath: readonly string[]) => number | undefined> {
  const lineCounter = new LineCounter()
  const document = parseDocument(await readConfigText(file), { lineCounter })
  return (yamlPath) => {
    const node = document.getIn(yamlPath, true) as { range?: [number, number, number] } | undefined
    const offset = node?.range?.[0]
    return offset === undefined ? undefined : lineCounter.linePos(offset).line
  }
}
