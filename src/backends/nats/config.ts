import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import type { Duration } from '../../core/duration.js'
import { ConfigError } from '../../core/errors.js'
import {
  configPath,
  durationField,
  loadConfigFile,
  type ConfigLookup,
} from '../../internal/config.js'
import { optionIssue } from '../../internal/checks.js'
import { resolveOptions, type NatsBucketOptions, type NatsStoreOptions } from './options.js'

/** The YAML field of each option, for errors that point at the line. */
const YAML_PATH: Readonly<Record<string, readonly string[]>> = {
  servers: ['servers'],
  'servers (NATS_URL)': ['servers'],
  bucket: ['bucket'],
  create: ['create'],
  'create.replicas': ['create', 'replicas'],
  'create.history': ['create', 'history'],
  'create.storage': ['create', 'storage'],
  'create.maxValueSize': ['create', 'max-value-size'],
  user: ['user'],
  password: ['password'],
  token: ['token'],
  nkeySeed: ['nkey-file'],
  credsFile: ['creds-file'],
  tls: ['tls'],
  'tls.caFile': ['tls', 'ca-file'],
  'tls.certFile': ['tls', 'cert-file'],
  'tls.keyFile': ['tls', 'key-file'],
  'tls.handshakeFirst': ['tls', 'handshake-first'],
  name: ['name'],
  connectTimeout: ['connect-timeout'],
  requestTimeout: ['request-timeout'],
  reconnectTimeWait: ['reconnect-time-wait'],
  maxReconnectAttempts: ['max-reconnect-attempts'],
  pingInterval: ['ping-interval'],
  discoverServers: ['discover-servers'],
  heartbeat: ['heartbeat'],
  resumeWithin: ['resume-within'],
  directGets: ['direct-gets'],
  retryDelay: ['retry-delay'],
  maxRetryDelay: ['max-retry-delay'],
  maxConcurrentRequests: ['max-concurrent-requests'],
  resyncAfterReconnect: ['resync-after-reconnect'],
}

const text = z.string().min(1, 'expected a non-empty string')

/** The file's fields: kebab-case, as the other backends' files. */
const fileSchema = z
  .object({
    servers: z.union([text, z.array(text).min(1, 'expected at least one server')]).optional(),
    bucket: text.optional(),
    create: z
      .union([
        z.boolean(),
        z
          .object({
            replicas: z.number().int().optional(),
            history: z.number().int().optional(),
            storage: z.enum(['file', 'memory']).optional(),
            'max-value-size': z.number().int().optional(),
          })
          .strict(),
      ])
      .optional(),
    user: text.optional(),
    password: text.optional(),
    'password-file': text.optional(),
    token: text.optional(),
    'token-file': text.optional(),
    'nkey-file': text.optional(),
    'creds-file': text.optional(),
    tls: z
      .object({
        'ca-file': text.optional(),
        'cert-file': text.optional(),
        'key-file': text.optional(),
        'handshake-first': z.boolean().optional(),
      })
      .strict()
      .optional(),
    name: text.optional(),
    'connect-timeout': durationField.optional(),
    'request-timeout': durationField.optional(),
    'reconnect-time-wait': durationField.optional(),
    'max-reconnect-attempts': z.number().int().optional(),
    'ping-interval': durationField.optional(),
    'discover-servers': z.boolean().optional(),
    heartbeat: durationField.optional(),
    'resume-within': durationField.optional(),
    'direct-gets': z.boolean().optional(),
    'retry-delay': durationField.optional(),
    'max-retry-delay': durationField.optional(),
    'max-concurrent-requests': z.number().int().optional(),
    'resync-after-reconnect': z.boolean().optional(),
  })
  .strict()

type FileConfig = z.infer<typeof fileSchema>

/** A placeholder the checks accept where a secret is read from a file later. */
const FROM_FILE = 'from-file'
const SEED_PLACEHOLDER = `S${'A'.repeat(57)}`

/** The entries whose value is not undefined (the options are exact: no undefined fields). */
function defined<T extends object>(entries: { [K in keyof T]: T[K] | undefined }): T {
  return Object.fromEntries(Object.entries(entries).filter(([, v]) => v !== undefined)) as T
}

function storeOptions(file: FileConfig, secrets: Secrets): NatsStoreOptions {
  const tls = file.tls
  const create = file.create
  const bucket: boolean | NatsBucketOptions | undefined =
    typeof create === 'object'
      ? defined<NatsBucketOptions>({
          replicas: create.replicas,
          history: create.history,
          storage: create.storage,
          maxValueSize: create['max-value-size'],
        })
      : create
  const durations: [keyof NatsStoreOptions, Duration | undefined][] = [
    ['connectTimeout', file['connect-timeout']],
    ['requestTimeout', file['request-timeout']],
    ['reconnectTimeWait', file['reconnect-time-wait']],
    ['pingInterval', file['ping-interval']],
    ['heartbeat', file.heartbeat],
    ['resumeWithin', file['resume-within']],
    ['retryDelay', file['retry-delay']],
    ['maxRetryDelay', file['max-retry-delay']],
  ]
  return {
    ...defined<NatsStoreOptions>({
      servers: file.servers,
      bucket: file.bucket,
      create: bucket,
      user: file.user,
      password: secrets.password,
      token: secrets.token,
      nkeySeed: secrets.nkeySeed,
      credsFile: file['creds-file'],
      tls:
        tls === undefined
          ? undefined
          : defined({
              caFile: tls['ca-file'],
              certFile: tls['cert-file'],
              keyFile: tls['key-file'],
              handshakeFirst: tls['handshake-first'],
            }),
      name: file.name,
      maxReconnectAttempts: file['max-reconnect-attempts'],
      discoverServers: file['discover-servers'],
      directGets: file['direct-gets'],
      maxConcurrentRequests: file['max-concurrent-requests'],
      resyncAfterReconnect: file['resync-after-reconnect'],
    }),
    ...Object.fromEntries(durations.filter(([, value]) => value !== undefined)),
  }
}

interface Secrets {
  readonly password: string | undefined
  readonly token: string | undefined
  readonly nkeySeed: string | undefined
}

/** Secrets as the checks see them before the files are read: placeholders that pass. */
function placeholders(config: FileConfig): Secrets {
  return {
    password: config.password ?? (config['password-file'] === undefined ? undefined : FROM_FILE),
    token: config.token ?? (config['token-file'] === undefined ? undefined : FROM_FILE),
    nkeySeed: config['nkey-file'] === undefined ? undefined : SEED_PLACEHOLDER,
  }
}

/** Pairs of fields of which at most one may be given. */
const EXCLUSIVE: readonly (readonly [keyof FileConfig, keyof FileConfig])[] = [
  ['password', 'password-file'],
  ['token', 'token-file'],
]

/**
 * Loads the NATS configuration named by `--nats-config <file>` (or `--nats-config=<file>`) or the
 * `NATS_CONFIG` environment variable into the options of `createNatsStore` (the scheduler is left
 * to the caller); resolves `undefined` when neither names a file. The file is YAML (or JSON):
 *
 * ```yaml
 * servers: [nats://n1:4222, nats://n2:4222]   # default NATS_URL, then nats://127.0.0.1:4222
 * bucket: config
 * create: { replicas: 3 }                     # create the bucket when missing
 * user: app                                   # with password or password-file
 * password-file: /run/secrets/nats
 * # or token / token-file, nkey-file (a seed), creds-file
 * tls:
 *   ca-file: /etc/nats/ca.pem
 *   cert-file: /etc/nats/client.pem
 *   key-file: /etc/nats/client-key.pem
 * request-timeout: 5s
 * reconnect-time-wait: 1s
 * max-reconnect-attempts: -1
 * resync-after-reconnect: false
 * ```
 *
 * Every field is optional; the others (`name`, `connect-timeout`, `ping-interval`,
 * `discover-servers`, `heartbeat`, `resume-within`, `direct-gets`, `retry-delay`,
 * `max-retry-delay`, `max-concurrent-requests`) are the store options of the same names.
 * Unknown fields are errors.
 *
 * @throws ConfigError naming the file, the line and the field when the file is missing, is not
 *   YAML, or holds a wrong value (a server URL that does not parse, two ways to authenticate, a
 *   cert-file without key-file, a secret file that cannot be read).
 */
export async function loadNatsConfig(
  lookup: ConfigLookup = {},
): Promise<NatsStoreOptions | undefined> {
  const file = configPath({ flag: '--nats-config', env: 'NATS_CONFIG' }, lookup)
  if (file === undefined) return undefined
  const env = lookup.env ?? process.env
  const schema = fileSchema.superRefine((config, context) => {
    for (const [a, b] of EXCLUSIVE) {
      if (config[a] !== undefined && config[b] !== undefined) {
        context.addIssue({ code: 'custom', path: [b], message: `give ${a} or ${b}, not both` })
        return
      }
    }
    const issue = optionIssue(
      (source) => resolveOptions(storeOptions(config, placeholders(config)), source, env),
      YAML_PATH,
      (field) => (field === 'servers (NATS_URL)' ? 'NATS_URL' : undefined),
    )
    if (issue !== undefined) context.addIssue({ code: 'custom', ...issue })
  })
  const config = await loadConfigFile(file, schema, lookup)
  const secret = async (field: keyof FileConfig): Promise<string | undefined> => {
    const path = config[field]
    if (typeof path !== 'string') return undefined
    let content: string
    try {
      content = (await readFile(path, 'utf8')).trim()
    } catch (error) {
      throw new ConfigError(
        file,
        field,
        `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
        { cause: error },
      )
    }
    if (content === '') throw new ConfigError(file, field, `${path} is empty`)
    return content
  }
  const secrets: Secrets = {
    password: config.password ?? (await secret('password-file')),
    token: config.token ?? (await secret('token-file')),
    nkeySeed: await secret('nkey-file'),
  }
  const options = storeOptions(config, secrets)
  try {
    resolveOptions(options, file, env)
  } catch (error) {
    // Only a secret read from a file can fail here (an nkey file that holds no seed).
    if (error instanceof ConfigError && error.field === 'nkeySeed') {
      throw new ConfigError(
        file,
        'nkey-file',
        `${config['nkey-file'] ?? ''} does not hold an nkey seed (SU...)`,
      )
    }
    throw error
  }
  return options
}
