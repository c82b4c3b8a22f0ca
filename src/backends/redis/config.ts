import { readFile } from 'node:fs/promises'
import type { ConnectionOptions } from 'node:tls'
import { z } from 'zod'
import type { Duration } from '../../core/duration.js'
import { ConfigError } from '../../core/errors.js'
import {
  configPath,
  durationField,
  parseConfig,
  readConfigText,
  type ConfigLookup,
} from '../../internal/config.js'
import type { RedisStoreOptions } from './options.js'

export type { ConfigLookup }

/**
 * Where {@link loadRedisConfig} looks.
 * @deprecated The same type as {@link ConfigLookup}, which every backend's loader takes.
 */
export type RedisConfigLookup = ConfigLookup

/**
 * A duration: a string such as `'500ms'` or `'3s'`, or an integer, which (as in the Go original,
 * where these fields are `time.Duration`) counts nanoseconds. `0` means the default.
 */
const duration = durationField.transform((value): Duration | undefined =>
  typeof value === 'number' ? (value === 0 ? undefined : value / 1e6) : value,
)

const address = z
  .string()
  .regex(/^(?:\[[^\]]+\]|[^:\s]+):\d{1,5}$/, "expected an address 'host:port'")

const tls = z.strictObject({
  enabled: z.boolean().optional(),
  'skip-verify': z.boolean().optional(),
  'cert-file': z.string().optional(),
  'key-file': z.string().optional(),
  'ca-file': z.string().optional(),
})

/** Fields every shape takes (the Go `ClientConfig`, plus `tls`). */
const common = {
  password: z.string().optional(),
  'dial-timeout': duration.optional(),
  'read-timeout': duration.optional(),
  'write-timeout': duration.optional(),
  // go-redis pool settings: ioredis has no pool (one pipelined connection per server), so these
  // are accepted for compatibility with Go configuration files and have no effect.
  pool: z
    .strictObject({
      'max-connections': z.int().nonnegative().optional(),
      'busy-timeout': duration.optional(),
      'idle-timeout': duration.optional(),
      'idle-check-frequency': z.union([z.int(), z.string()]).optional(),
    })
    .optional(),
  tls: tls.optional(),
  // Not in the Go original: see `watchMemory`.
  'watch-memory': z.enum(['values', 'lean']).optional(),
}

const db = z.int().nonnegative().optional()

const nodeSchema = z.strictObject({
  endpoint: address,
  db,
  // Ignored by the Go original as well (its node client never reads from replicas).
  'enable-query-on-slave': z.boolean().optional(),
  ...common,
})

const sentinelSchema = z.strictObject({
  endpoints: z.array(address).min(1, 'expected at least one sentinel address'),
  'master-name': z.string().min(1),
  db,
  ...common,
})

const clusterSchema = z
  .strictObject({
    endpoints: z.array(address).min(1, 'expected at least one cluster node address'),
    'enable-query-on-slave': z.boolean().optional(),
    // The Go original's JSON tag is misspelt `max-rediects`; both spellings are read.
    'max-rediects': z.int().nonnegative().optional(),
    'max-redirects': z.int().nonnegative().optional(),
    'route-by-latency': z.boolean().optional(),
    ...common,
  })
  .refine(
    (config) => config['max-rediects'] === undefined || config['max-redirects'] === undefined,
    {
      error: 'give max-redirects or the Go spelling max-rediects, not both',
      path: ['max-redirects'],
    },
  )

const shape = z.looseObject({
  'master-name': z.unknown().optional(),
  endpoint: z.unknown().optional(),
})

/**
 * Every field of every shape, checked before the shape is picked: a misspelt `endpont` is an
 * unknown field (did you mean 'endpoint'?), not a Cluster configuration missing `endpoints`.
 */
const anyShape = z.strictObject(
  Object.fromEntries(
    [nodeSchema.shape, sentinelSchema.shape, clusterSchema.shape].flatMap((fields) =>
      Object.entries(fields).map(([name, type]) => [
        name,
        name === 'tls' || name === 'pool' ? type : z.unknown().optional(),
      ]),
    ),
  ),
)

const SHAPES = {
  sentinel: { schema: sentinelSchema, why: 'master-name is set' },
  node: { schema: nodeSchema, why: 'endpoint is set and master-name is not' },
  cluster: { schema: clusterSchema, why: 'neither master-name nor endpoint is set' },
} as const

/**
 * Parses `text` as the `kind` shape; a field of another shape is refused saying which shape was
 * picked and why (`db` in a Cluster configuration).
 */
function parseShape<K extends keyof typeof SHAPES>(
  kind: K,
  text: string,
  source: string,
  lookup: ConfigLookup,
): z.infer<(typeof SHAPES)[K]['schema']> {
  const { schema, why } = SHAPES[kind]
  try {
    return parseConfig(text, source, schema, lookup) as z.infer<(typeof SHAPES)[K]['schema']>
  } catch (error) {
    const field = error instanceof ConfigError ? error.field : undefined
    if (
      field === undefined ||
      !(field in anyShape.shape) ||
      !(error as ConfigError).message.includes('unknown field')
    ) {
      throw error
    }
    const { source: at } = error as ConfigError
    throw new ConfigError(
      at,
      field,
      `not a field of a ${kind} configuration (the shape is ${kind} because ${why})`,
    )
  }
}

/**
 * Loads the Redis configuration named by `--redis-config <file>` (or `--redis-config=<file>`), or
 * else by the `REDIS_CONFIG` environment variable, and turns it into {@link RedisStoreOptions}.
 * Resolves `undefined` when neither names a file (the backend is then disabled, as in the Go
 * original).
 *
 * The file is YAML (or JSON) with the Go original's fields; its shape picks the deployment:
 * - `master-name` set: Sentinel. `endpoints` (sentinels), `master-name`, `db`.
 * - else `endpoint` set: one node. `endpoint`, `db`, `tls`, `enable-query-on-slave` (ignored, as
 *   in Go).
 * - else: Cluster. `endpoints` (seed nodes), `enable-query-on-slave` (broker reads from
 *   replicas), `max-redirects` (also the Go spelling `max-rediects`; 0 = 16), `route-by-latency`
 *   (broker reads from masters and replicas: ioredis has no latency routing).
 *
 * Every shape takes `password`, `dial-timeout` (connect timeout), `read-timeout` (command timeout),
 * `write-timeout` (accepted; ioredis has one timeout per command), `pool` (accepted, no effect:
 * ioredis pipelines one connection per server) and `tls` (`enabled`, `skip-verify`, `cert-file`,
 * `key-file`, `ca-file`; the Go original reads it for a node only), and `watch-memory`
 * (`values` or `lean`, see `watchMemory`; not in the Go original). Durations are strings such as
 * `'500ms'` or Go nanosecond integers; 0 means the default.
 *
 * @throws ConfigError naming the file, the line and the field: unknown fields, wrong types,
 *   unreadable TLS files.
 *
 * @example
 * ```ts
 * import { createRedisStore, loadRedisConfig } from 'rx-datasync/redis'
 * const options = await loadRedisConfig()
 * if (options) createRedisStore(options)
 * ```
 */
export async function loadRedisConfig(
  lookup: ConfigLookup = {},
): Promise<RedisStoreOptions | undefined> {
  const file = configPath({ flag: '--redis-config', env: 'REDIS_CONFIG' }, lookup)
  if (file === undefined) return undefined
  return parseRedisConfig(await readConfigText(file), file, lookup)
}

/** Validates configuration text (see {@link loadRedisConfig}); `source` names it in errors. */
async function parseRedisConfig(
  text: string,
  source: string,
  lookup: ConfigLookup,
): Promise<RedisStoreOptions> {
  parseConfig(text, source, anyShape, lookup)
  const detected = parseConfig(text, source, shape, lookup)
  const given = (value: unknown) => value !== undefined && value !== null && value !== ''
  if (given(detected['master-name'])) {
    const config = parseShape('sentinel', text, source, lookup)
    return {
      sentinel: { sentinels: config.endpoints, masterName: config['master-name'] },
      ...(config.db !== undefined ? { db: config.db } : {}),
      ...(await commonOptions(config, source)),
    }
  }
  if (given(detected.endpoint)) {
    const config = parseShape('node', text, source, lookup)
    return {
      node: config.endpoint,
      ...(config.db !== undefined ? { db: config.db } : {}),
      ...(await commonOptions(config, source)),
    }
  }
  const config = parseShape('cluster', text, source, lookup)
  const maxRedirects = config['max-redirects'] ?? config['max-rediects']
  const scaleReads = config['route-by-latency']
    ? 'all'
    : config['enable-query-on-slave']
      ? 'slave'
      : 'master'
  return {
    cluster: {
      nodes: config.endpoints,
      scaleReads,
      ...(maxRedirects !== undefined && maxRedirects > 0 ? { maxRedirects } : {}),
    },
    ...(await commonOptions(config, source)),
  }
}

type Common = z.infer<z.ZodObject<typeof common>>

async function commonOptions(config: Common, source: string): Promise<Partial<RedisStoreOptions>> {
  const dial = config['dial-timeout']
  const read = config['read-timeout']
  const tlsOptions = config.tls?.enabled === true ? await loadTls(config.tls, source) : undefined
  return {
    ...(config.password !== undefined && config.password !== ''
      ? { password: config.password }
      : {}),
    ...(dial !== undefined ? { connectTimeout: dial } : {}),
    ...(read !== undefined ? { commandTimeout: read } : {}),
    ...(tlsOptions !== undefined ? { tls: tlsOptions } : {}),
    ...(config['watch-memory'] !== undefined ? { watchMemory: config['watch-memory'] } : {}),
  }
}

async function loadTls(config: z.infer<typeof tls>, source: string): Promise<ConnectionOptions> {
  const read = async (field: 'cert-file' | 'key-file' | 'ca-file'): Promise<Buffer | undefined> => {
    const path = config[field]
    if (path === undefined || path === '') return undefined
    try {
      return await readFile(path)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      throw new ConfigError(
        source,
        `tls.${field}`,
        `cannot read '${path}' (${code ?? String(error)})`,
        { cause: error },
      )
    }
  }
  // Read side by side, but a failure is reported in the fields' order, not in the order the
  // reads happened to fail (two missing files named the one whose read lost the race).
  const reads = await Promise.allSettled([read('cert-file'), read('key-file'), read('ca-file')])
  const [cert, key, ca] = reads.map((result) => {
    if (result.status === 'rejected') throw result.reason
    return result.value
  })
  if ((cert === undefined) !== (key === undefined)) {
    throw new ConfigError(
      source,
      'tls',
      'give both cert-file and key-file for a client certificate, or neither',
    )
  }
  return {
    rejectUnauthorized: config['skip-verify'] !== true,
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(ca !== undefined ? { ca } : {}),
  }
}
