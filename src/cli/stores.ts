import { isAbsolute, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { EtcdStoreOptions } from '../backends/etcd/index.js'
import type { RedisStoreOptions } from '../backends/redis/index.js'
import type { ConsulStoreOptions } from '../backends/consul/index.js'
import type { FileStoreOptions } from '../backends/filedb/index.js'
import type { PostgresStoreOptions } from '../backends/postgres/index.js'
import type { NatsStoreOptions } from '../backends/nats/index.js'
import type { ConfigLookup } from '../internal/config.js'
import { ConfigError, describe } from '../core/errors.js'
import type { KvStore } from '../core/store.js'
import { UsageError } from './errors.js'

/** The backends the command talks to. */
export type Backend = 'etcd' | 'redis' | 'consul' | 'filedb' | 'postgres' | 'nats'

export const BACKENDS: readonly Backend[] = [
  'etcd',
  'redis',
  'consul',
  'filedb',
  'postgres',
  'nats',
]

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

/** A store to open: the backend, its options, and how to name it in messages. */
export type StoreTarget = {
  /** E.g. `etcd://127.0.0.1:2379` (passwords masked) or `etcd (from /etc/app/etcd.yaml)`. */
  readonly label: string
  /** Give the orchestrator `resyncAfterReconnect` (a configuration file's setting). */
  readonly resyncAfterReconnect: boolean
  /** Where a factory's TypeError came from: a URL is a usage error, a file a config error. */
  readonly origin: { readonly kind: 'url' } | { readonly kind: 'file'; readonly file: string }
} & (
  | { readonly backend: 'etcd'; readonly options: EtcdStoreOptions }
  | { readonly backend: 'redis'; readonly options: RedisStoreOptions }
  | { readonly backend: 'consul'; readonly options: ConsulStoreOptions }
  | { readonly backend: 'filedb'; readonly options: FileStoreOptions }
  | { readonly backend: 'postgres'; readonly options: PostgresStoreOptions }
  | { readonly backend: 'nats'; readonly options: NatsStoreOptions }
  | { readonly backend: 'http'; readonly options: HttpTargetOptions }
)

/** A served store (`rx-datasync serve`): its URL, and the token of RX_DATASYNC_HTTP_TOKEN. */
export interface HttpTargetOptions {
  readonly url: string
  readonly token?: string
}

/** The environment variable holding the bearer token for an http(s):// store. */
export const HTTP_TOKEN_ENV = 'RX_DATASYNC_HTTP_TOKEN'

/** An open store and its name for messages. */
export interface OpenedStore {
  readonly store: KvStore
  readonly label: string
  readonly resyncAfterReconnect: boolean
}

const URL_FORMS =
  'etcd://host:port[,host:port...], redis://[[user]:password@]host:port[/db], rediss://..., consul://host:port, file:///path/to/dir-or-file, http(s)://host:port (a served store), postgres://[user[:password]@]host:port/database, nats://[user:password@]host:port[,host:port...]/bucket'

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
 * Parses a store URL into the backend's options.
 *
 * @throws UsageError when the URL is malformed or its scheme unknown.
 */
export function parseStoreUrl(spec: string, cwd: string): StoreTarget {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(spec)?.[1]?.toLowerCase()
  const url = { kind: 'url' } as const
  switch (scheme) {
    case 'etcd': {
      const { user, password, hosts, path } = authority(spec, 'etcd', 2379)
      if (path !== '' && path !== '/') throw bad(spec, 'an etcd URL has no path')
      if ((user === undefined) !== (password === undefined) || user === '') {
        throw bad(spec, 'give both user and password (etcd://user:password@host:port), or neither')
      }
      return {
        backend: 'etcd',
        label: mask(spec),
        resyncAfterReconnect: false,
        origin: url,
        options: {
          endpoints: hosts,
          ...(user !== undefined && password !== undefined
            ? { auth: { username: user, password } }
            : {}),
        },
      }
    }
    case 'redis':
    case 'rediss': {
      const { user, password, hosts, path } = authority(spec, scheme, 6379)
      if (hosts.length !== 1) throw bad(spec, 'a Redis URL names one server')
      const db = path === '' || path === '/' ? undefined : /^\/(\d{1,5})$/.exec(path)?.[1]
      if (path !== '' && path !== '/' && db === undefined) {
        throw bad(spec, "the path is the database number, e.g. '/0'")
      }
      return {
        backend: 'redis',
        label: mask(spec),
        resyncAfterReconnect: false,
        origin: url,
        options: {
          node: hosts[0] ?? '',
          ...(db === undefined ? {} : { db: Number(db) }),
          ...(user !== undefined && user !== '' ? { username: user } : {}),
          ...(password !== undefined && password !== '' ? { password } : {}),
          ...(scheme === 'rediss' ? { tls: {} } : {}),
        },
      }
    }
    case 'consul': {
      const { user, hosts, path } = authority(spec, 'consul', 8500)
      if (user !== undefined) throw bad(spec, 'give the ACL token in a --consul-config file')
      if (hosts.length !== 1) throw bad(spec, 'a Consul URL names one agent')
      if (path !== '' && path !== '/') throw bad(spec, 'a Consul URL has no path')
      return {
        backend: 'consul',
        label: spec,
        resyncAfterReconnect: false,
        origin: url,
        options: { address: hosts[0] ?? '' },
      }
    }
    case 'http':
    case 'https': {
      let parsed: URL
      try {
        parsed = new URL(spec)
      } catch {
        throw bad(spec, `expected ${scheme}://host:port[/path]`)
      }
      if (parsed.username !== '' || parsed.password !== '') {
        throw bad(spec, `give the token in ${HTTP_TOKEN_ENV}, not in the URL`)
      }
      if (parsed.search !== '' || parsed.hash !== '') {
        throw bad(spec, 'query strings and fragments are not understood')
      }
      return {
        backend: 'http',
        label: spec,
        resyncAfterReconnect: false,
        origin: url,
        options: { url: spec },
      }
    }
    case 'file': {
      let path: string
      if (spec.startsWith('file://')) {
        try {
          path = fileURLToPath(spec)
        } catch (error) {
          throw bad(spec, `${describe(error)} (write file:///absolute/path or file:relative/path)`)
        }
      } else {
        const rest = decodeURIComponent(spec.slice('file:'.length))
        if (rest === '') throw bad(spec, 'expected a path after file:')
        path = isAbsolute(rest) ? rest : resolve(cwd, rest)
      }
      return {
        backend: 'filedb',
        label: spec,
        resyncAfterReconnect: false,
        origin: url,
        options: { paths: [path] },
      }
    }
    case 'postgres':
    case 'postgresql': {
      // The whole URL goes to the store (sslmode and the rest are read there).
      const { hosts } = authority(spec.replace(/\?.*$/, ''), scheme, 5432)
      if (hosts.length !== 1) throw bad(spec, 'a PostgreSQL URL names one server')
      return {
        backend: 'postgres',
        label: mask(spec),
        resyncAfterReconnect: false,
        origin: url,
        options: { connectionString: spec },
      }
    }
    case 'nats': {
      const { user, password, hosts, path } = authority(spec, 'nats', 4222)
      const bucket = path.replace(/^\//, '')
      if (bucket === '' || bucket.includes('/')) {
        throw bad(spec, 'the path is the KV bucket, e.g. nats://127.0.0.1:4222/config')
      }
      if ((user === undefined) !== (password === undefined) || user === '') {
        throw bad(
          spec,
          'give both user and password (nats://user:password@host:port/bucket), or neither',
        )
      }
      return {
        backend: 'nats',
        label: mask(spec),
        resyncAfterReconnect: false,
        origin: url,
        options: {
          servers: hosts.map((host) => `nats://${host}`),
          bucket,
          ...(user !== undefined && password !== undefined ? { user, password } : {}),
        },
      }
    }
    default:
      throw new UsageError(
        `store '${spec}': expected a URL (${URL_FORMS}) or a backend name (${BACKENDS.join(', ')}) configured by its file`,
      )
  }
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

interface Authority {
  readonly user: string | undefined
  readonly password: string | undefined
  readonly hosts: string[]
  readonly path: string
}

/** Splits `scheme://[user[:password]@]host[:port][,host[:port]...][/path]`. */
function authority(spec: string, scheme: string, defaultPort: number): Authority {
  const prefix = `${scheme}://`
  if (!spec.toLowerCase().startsWith(prefix)) throw bad(spec, `expected ${prefix}host:port`)
  const rest = spec.slice(prefix.length)
  if (/[?#]/.test(rest)) throw bad(spec, 'query strings and fragments are not understood')
  const slash = rest.indexOf('/')
  const auth = slash === -1 ? rest : rest.slice(0, slash)
  const path = slash === -1 ? '' : rest.slice(slash)
  const at = auth.lastIndexOf('@')
  const userinfo = at === -1 ? undefined : auth.slice(0, at)
  const hostList = at === -1 ? auth : auth.slice(at + 1)
  let user: string | undefined
  let password: string | undefined
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':')
    user = decode(spec, colon === -1 ? userinfo : userinfo.slice(0, colon))
    password = colon === -1 ? undefined : decode(spec, userinfo.slice(colon + 1))
  }
  if (hostList === '') throw bad(spec, 'expected a host')
  const hosts = hostList.split(',').map((host) => {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+)(?::(\d{1,5}))?$/.exec(host)
    const port = match?.[2] === undefined ? defaultPort : Number(match[2])
    if (!match || port < 1 || port > 65_535) throw bad(spec, `'${host}' is not host[:port]`)
    return `${match[1] ?? ''}:${port}`
  })
  return { user, password, hosts, path }
}

function decode(spec: string, text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    throw bad(spec, 'the user or password is not URL-encoded correctly')
  }
}

function bad(spec: string, why: string): UsageError {
  return new UsageError(`store '${mask(spec)}': ${why}`)
}

/** Hides the password of a URL in messages. */
function mask(spec: string): string {
  return spec.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:)[^@/]*@/i, '$1***@')
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}
