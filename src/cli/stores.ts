import { resolve } from 'node:path'
import type { RedisStoreOptions } from '../backends/redis/index.js'
import type { ConfigLookup } from '../internal/config.js'
import { ConfigError } from '../core/errors.js'
import type { KvStore } from '../core/store.js'
import { UsageError } from './errors.js'
import {
  BACKENDS,
  HTTP_TOKEN_ENV,
  URL_FORMS,
  parseStoreUrl,
  type Backend,
  type StoreTarget,
} from './store-url.js'

export {
  BACKENDS,
  HTTP_TOKEN_ENV,
  parseStoreUrl,
  type Backend,
  type HttpTargetOptions,
  type StoreTarget,
} from './store-url.js'

/** Each backend's configuration-file flag and environment variable (those of its loader). */
export const CONFIG_SOURCES: Readonly<
  Record<Backend, { readonly flag: string; readonly env: string }>
> = {
  etcd: { flag: '--etcd-config', env: 'ETCD_CONFIG' },
  redis: { flag: '--redis-config', env: 'REDIS_CONFIG' },
  consul: { flag: '--consul-config', env: 'CONSUL_CONFIG' },
  filedb: { flag: '--filedb-config', env: 'FILEDB_CONFIG' },
  postgres: { flag: '--postgres-config', env: 'POSTGRES_CONFIG' },
  nats: { flag: '--nats-config', env: 'NATS_CONFIG' },
}

/** The environment variable that names the store when no flag does. */
export const STORE_ENV = 'RX_DATASYNC_STORE'

/** What the command line and the environment say about stores. */
export interface StoreContext {
  readonly env: Readonly<Record<string, string | undefined>>
  readonly cwd: string
  /** Configuration files named by flags (`--etcd-config` ...). */
  readonly configFiles: Readonly<Partial<Record<Backend, string>>>
  /** `--expand-env`: expand `${VAR}` in configuration files. */
  readonly expandEnv: boolean
}

/** An open store and its name for messages. */
export interface OpenedStore {
  readonly store: KvStore
  readonly label: string
  readonly resyncAfterReconnect: boolean
}

/**
 * The store of a command that uses one: `--store`, else the one backend named by a config flag,
 * else `RX_DATASYNC_STORE`, else the one backend named by a config environment variable.
 *
 * @throws UsageError when none or several are named.
 */
export function chooseStore(store: string | undefined, context: StoreContext): string {
  if (store !== undefined) return store
  const flagged = BACKENDS.filter((backend) => context.configFiles[backend] !== undefined)
  if (flagged.length > 1) {
    throw new UsageError(
      `several stores are configured (${flagged.map((b) => CONFIG_SOURCES[b].flag).join(', ')}); choose one with --store ${flagged.join('|')}`,
    )
  }
  if (flagged[0] !== undefined) return flagged[0]
  const fromEnv = context.env[STORE_ENV]
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv
  const configured = BACKENDS.filter((backend) =>
    nonEmpty(context.env[CONFIG_SOURCES[backend].env]),
  )
  if (configured.length > 1) {
    throw new UsageError(
      `several stores are configured (${configured.map((b) => CONFIG_SOURCES[b].env).join(', ')}); choose one with --store ${configured.join('|')}`,
    )
  }
  if (configured[0] !== undefined) return configured[0]
  throw new UsageError(
    `no store given: use --store with a URL (${URL_FORMS}), or a configuration file (--etcd-config, --redis-config, --consul-config, --filedb-config, --postgres-config, --nats-config, or their environment variables)`,
  )
}

/**
 * Resolves a store spec (a URL or a backend name) into a target; a backend name reads its
 * configuration file through the backend's own loader.
 *
 * @throws UsageError for a malformed spec or a backend name without a configuration file;
 *   ConfigError (from the loader) for a wrong file.
 */
export async function resolveTarget(spec: string, context: StoreContext): Promise<StoreTarget> {
  const backend = BACKENDS.find((name) => name === spec)
  if (backend === undefined) {
    const target = parseStoreUrl(spec, context.cwd)
    const token = nonEmpty(context.env[HTTP_TOKEN_ENV])
    if (target.backend !== 'http' || token === undefined) return target
    return { ...target, options: { ...target.options, token } }
  }
  const { flag, env } = CONFIG_SOURCES[backend]
  const named = context.configFiles[backend] ?? nonEmpty(context.env[env])
  if (named === undefined) {
    throw new UsageError(
      `--store ${backend}: name its configuration file with ${flag} or ${env}, or give a URL instead`,
    )
  }
  const file = resolve(context.cwd, named)
  const lookup = { argv: [flag, file], env: context.env, expandEnv: context.expandEnv }
  const origin = { kind: 'file', file } as const
  const label = `${backend} (from ${file})`
  const options = await loadOptions(backend, lookup)
  if (options === undefined) throw new ConfigError(file, undefined, 'nothing was loaded')
  // etcd, Consul and PostgreSQL carry the orchestrator's resyncAfterReconnect in their files.
  const resyncAfterReconnect = 'resyncAfterReconnect' in options && options.resyncAfterReconnect
  return { backend, label, origin, options, resyncAfterReconnect } as StoreTarget
}

/** A backend's options from its configuration file, through its own loader (loaded lazily). */
async function loadOptions(backend: Backend, lookup: ConfigLookup) {
  switch (backend) {
    case 'etcd':
      // An etcd file may hold nothing but defaults.
      return (await (await import('../backends/etcd/index.js')).loadEtcdConfig(lookup)) ?? {}
    case 'redis':
      return (await import('../backends/redis/index.js')).loadRedisConfig(lookup)
    case 'consul':
      return (await import('../backends/consul/index.js')).loadConsulConfig(lookup)
    case 'filedb':
      return (await import('../backends/filedb/index.js')).loadFileDbConfig(lookup)
    case 'postgres':
      return (await import('../backends/postgres/index.js')).loadPostgresConfig(lookup)
    case 'nats':
      return (await import('../backends/nats/index.js')).loadNatsConfig(lookup)
  }
}

/** What a command adds to a store's own options. */
export interface OpenSettings {
  /** Redis: only check `notify-keyspace-events`, never set it (`--verify-keyspace-events`). */
  readonly verifyKeyspaceEvents?: boolean
  /** Where a notice for the user goes (stderr). */
  readonly notice?: (message: string) => void
}

/**
 * Opens the store of a target, loading only its backend's module (and client library).
 *
 * @throws UsageError or ConfigError (by the target's origin) when the factory refuses the options.
 */
export async function openTarget(
  target: StoreTarget,
  settings: OpenSettings = {},
): Promise<OpenedStore> {
  let store: KvStore
  try {
    store = await create(withSettings(target, settings))
  } catch (error) {
    if (!(error instanceof TypeError)) throw error
    throw target.origin.kind === 'url'
      ? new UsageError(`store '${target.label}': ${error.message}`)
      : new ConfigError(target.origin.file, undefined, error.message, { cause: error })
  }
  return { store, label: target.label, resyncAfterReconnect: target.resyncAfterReconnect }
}

/**
 * A Redis watch that sets `notify-keyspace-events` says so (a shared server's configuration
 * changes); with `verifyKeyspaceEvents` it only checks.
 */
function withSettings(target: StoreTarget, settings: OpenSettings): StoreTarget {
  if (target.backend !== 'redis') return target
  const { notice } = settings
  const options: RedisStoreOptions = {
    ...target.options,
    ...(settings.verifyKeyspaceEvents === true ? { keyspaceEvents: 'verify' as const } : {}),
    ...(notice
      ? {
          onKeyspaceEventsSet: ({ server, before, after }) => {
            notice(
              `${target.label}: set notify-keyspace-events on ${server} from '${before}' to '${after}' (the watch needs keyspace events; --verify-keyspace-events only checks)`,
            )
          },
        }
      : {}),
  }
  return { ...target, options }
}

async function create(target: StoreTarget): Promise<KvStore> {
  switch (target.backend) {
    case 'etcd': {
      const { createEtcdStore } = await import('../backends/etcd/index.js')
      return createEtcdStore(target.options)
    }
    case 'redis': {
      const { createRedisStore } = await import('../backends/redis/index.js')
      return createRedisStore(target.options)
    }
    case 'consul': {
      const { createConsulStore } = await import('../backends/consul/index.js')
      return createConsulStore(target.options)
    }
    case 'filedb': {
      const { createFileStore } = await import('../backends/filedb/index.js')
      return createFileStore(target.options)
    }
    case 'http': {
      const { createHttpStore } = await import('../http/client/index.js')
      const { url, token } = target.options
      return createHttpStore(url, token === undefined ? {} : { token })
    }
    case 'postgres': {
      const { createPostgresStore } = await import('../backends/postgres/index.js')
      return createPostgresStore(target.options)
    }
    case 'nats': {
      const { createNatsStore } = await import('../backends/nats/index.js')
      return createNatsStore(target.options)
    }
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}
