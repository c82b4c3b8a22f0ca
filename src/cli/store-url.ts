/**
 * Store URLs of the command line (`etcd://`, `redis://`, `file://`, `http(s)://` ...): the
 * backends they name and the options each one gives the backend's factory.
 */
import { isAbsolute, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { EtcdStoreOptions } from '../backends/etcd/index.js'
import type { RedisStoreOptions } from '../backends/redis/index.js'
import type { ConsulStoreOptions } from '../backends/consul/index.js'
import type { FileStoreOptions } from '../backends/filedb/index.js'
import type { PostgresStoreOptions } from '../backends/postgres/index.js'
import type { NatsStoreOptions } from '../backends/nats/index.js'
import { describe } from '../core/errors.js'
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

export const URL_FORMS =
  'etcd://host:port[,host:port...], redis://[[user]:password@]host:port[/db], rediss://..., consul://host:port, file:///path/to/dir-or-file, http(s)://host:port (a served store), postgres://[user[:password]@]host:port/database, nats://[user:password@]host:port[,host:port...]/bucket'

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
