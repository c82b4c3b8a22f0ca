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
import { resolveOptions, type ConsulStoreOptions, type ConsulTlsOptions } from './options.js'

/** The YAML field of each option, for errors that point at the line. */
const YAML_PATH: Readonly<Record<string, readonly string[]>> = {
  address: ['address'],
  'address (CONSUL_HTTP_ADDR)': ['address'],
  token: ['token'],
  datacenter: ['datacenter'],
  consistency: ['consistency'],
  waitTime: ['wait-time'],
  requestTimeout: ['request-timeout'],
  minQueryInterval: ['min-query-interval'],
  retryDelay: ['retry-delay'],
  maxRetryDelay: ['max-retry-delay'],
  statusInterval: ['status-interval'],
  maxConcurrentRequests: ['max-concurrent-requests'],
  minTtl: ['min-ttl'],
  resyncAfterReconnect: ['resync-after-reconnect'],
  tls: ['tls'],
  'tls.caFile': ['tls', 'ca-file'],
  'tls.certFile': ['tls', 'cert-file'],
  'tls.keyFile': ['tls', 'key-file'],
  'tls.serverName': ['tls', 'server-name'],
  'tls.insecureSkipVerify': ['tls', 'insecure-skip-verify'],
}

const text = z.string().min(1, 'expected a non-empty string')

/** The file's fields: kebab-case, as cn-infra's consul.conf, with more of Consul's settings. */
const fileSchema = z
  .object({
    address: text.optional(),
    token: text.optional(),
    'token-file': text.optional(),
    datacenter: text.optional(),
    tls: z
      .object({
        'ca-file': text.optional(),
        'cert-file': text.optional(),
        'key-file': text.optional(),
        'server-name': text.optional(),
        'insecure-skip-verify': z.boolean().optional(),
      })
      .strict()
      .optional(),
    consistency: z.enum(['default', 'consistent', 'stale']).optional(),
    'wait-time': durationField.optional(),
    'request-timeout': durationField.optional(),
    'min-query-interval': durationField.optional(),
    'retry-delay': durationField.optional(),
    'max-retry-delay': durationField.optional(),
    'status-interval': durationField.optional(),
    'max-concurrent-requests': z.number().int().min(1).optional(),
    'min-ttl': durationField.optional(),
    'resync-after-reconnect': z.boolean().optional(),
  })
  .strict()

type FileConfig = z.infer<typeof fileSchema>

function storeOptions(
  file: FileConfig,
  env: Readonly<Record<string, string | undefined>>,
): ConsulStoreOptions {
  const tls = file.tls
  const tlsOptions: ConsulTlsOptions | undefined =
    tls === undefined
      ? undefined
      : {
          ...(tls['ca-file'] !== undefined ? { caFile: tls['ca-file'] } : {}),
          ...(tls['cert-file'] !== undefined ? { certFile: tls['cert-file'] } : {}),
          ...(tls['key-file'] !== undefined ? { keyFile: tls['key-file'] } : {}),
          ...(tls['server-name'] !== undefined ? { serverName: tls['server-name'] } : {}),
          ...(tls['insecure-skip-verify'] !== undefined
            ? { insecureSkipVerify: tls['insecure-skip-verify'] }
            : {}),
        }
  const address = file.address ?? nonEmpty(env.CONSUL_HTTP_ADDR)
  const token = file.token ?? nonEmpty(env.CONSUL_HTTP_TOKEN)
  const durations: [keyof ConsulStoreOptions, Duration | undefined][] = [
    ['waitTime', file['wait-time']],
    ['requestTimeout', file['request-timeout']],
    ['minQueryInterval', file['min-query-interval']],
    ['retryDelay', file['retry-delay']],
    ['maxRetryDelay', file['max-retry-delay']],
    ['statusInterval', file['status-interval']],
    ['minTtl', file['min-ttl']],
  ]
  return {
    ...(address !== undefined ? { address } : {}),
    ...(token !== undefined ? { token } : {}),
    ...(file.datacenter !== undefined ? { datacenter: file.datacenter } : {}),
    ...(tlsOptions !== undefined ? { tls: tlsOptions } : {}),
    ...(file.consistency !== undefined ? { consistency: file.consistency } : {}),
    ...(file['max-concurrent-requests'] !== undefined
      ? { maxConcurrentRequests: file['max-concurrent-requests'] }
      : {}),
    ...Object.fromEntries(durations.filter(([, value]) => value !== undefined)),
    ...(file['resync-after-reconnect'] !== undefined
      ? { resyncAfterReconnect: file['resync-after-reconnect'] }
      : {}),
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}

/**
 * Loads the Consul configuration named by `--consul-config <file>` (or `--consul-config=<file>`)
 * or the `CONSUL_CONFIG` environment variable into the options of `createConsulStore` (the
 * scheduler is left to the caller); resolves `undefined` when neither names a file (the backend
 * is then not configured). The file is YAML (or JSON):
 *
 * ```yaml
 * address: 127.0.0.1:8500        # or https://host:8501; default CONSUL_HTTP_ADDR, then 127.0.0.1:8500
 * token-file: /run/secrets/consul # or token: ...; default CONSUL_HTTP_TOKEN
 * datacenter: dc1
 * tls:
 *   ca-file: /etc/consul/ca.pem
 *   cert-file: /etc/consul/client.pem
 *   key-file: /etc/consul/client-key.pem
 *   server-name: server.dc1.consul
 * consistency: default            # default | consistent | stale
 * wait-time: 30s                  # a blocking query's wait
 * request-timeout: 10s
 * resync-after-reconnect: false
 * ```
 *
 * Every field is optional; `min-query-interval`, `retry-delay`, `max-retry-delay`,
 * `status-interval`, `max-concurrent-requests`, `min-ttl` and `resync-after-reconnect` are the
 * store options of the same names (give `resyncAfterReconnect` to the orchestrator too, as in the
 * example). Unknown fields are errors.
 *
 * @throws ConfigError naming the file, the line and the field when the file is missing, is not
 *   YAML, or holds a wrong value (an address that does not parse, a cert-file without key-file).
 *
 * @example
 * ```ts
 * import { createDatasync } from 'rx-datasync'
 * import { createConsulStore, loadConsulConfig } from 'rx-datasync/consul'
 * const options = await loadConsulConfig()
 * if (options) {
 *   const sync = createDatasync(createConsulStore(options), {
 *     resyncAfterReconnect: options.resyncAfterReconnect ?? false,
 *   })
 * }
 * ```
 */
export async function loadConsulConfig(
  lookup: ConfigLookup = {},
): Promise<ConsulStoreOptions | undefined> {
  const file = configPath({ flag: '--consul-config', env: 'CONSUL_CONFIG' }, lookup)
  if (file === undefined) return undefined
  const env = lookup.env ?? process.env
  const schema = fileSchema.superRefine((config, context) => {
    if (config.token !== undefined && config['token-file'] !== undefined) {
      context.addIssue({
        code: 'custom',
        path: ['token-file'],
        message: 'give token or token-file, not both',
      })
      return
    }
    const issue = optionIssue(
      (source) => resolveOptions(storeOptions(config, env), source, env),
      YAML_PATH,
      (field) =>
        field === 'address' && config.address === undefined ? 'CONSUL_HTTP_ADDR' : undefined,
    )
    if (issue !== undefined) context.addIssue({ code: 'custom', ...issue })
  })
  const config = await loadConfigFile(file, schema, lookup)
  const options = storeOptions(config, env)
  const tokenFile = config['token-file']
  if (tokenFile === undefined) return options
  let token: string
  try {
    token = (await readFile(tokenFile, 'utf8')).trim()
  } catch (error) {
    throw new ConfigError(
      file,
      'token-file',
      `cannot read ${tokenFile} (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      { cause: error },
    )
  }
  if (token === '') throw new ConfigError(file, 'token-file', `${tokenFile} is empty`)
  return { ...options, token }
}
