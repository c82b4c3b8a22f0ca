import { X509Certificate, createPrivateKey } from 'node:crypto'
import { asyncScheduler, type SchedulerLike } from 'rxjs'
import { describe } from '../../core/errors.js'
import { toMillis, type Duration } from '../../core/duration.js'
import type { ClientTls } from './client.js'
import { show } from './checks.js'
import { NAME } from './errors.js'
import { toBuffer } from './keys.js'
import type { EtcdStoreOptions } from './etcd-store.js'

/** {@link EtcdStoreOptions} checked, with every default filled in and durations in ms. */
export interface Resolved {
  readonly endpoints: readonly string[]
  readonly tls: ClientTls | undefined
  readonly dialTimeoutMs: number
  readonly operationTimeoutMs: number
  readonly autoCompactMs: number
  readonly resyncAfterReconnect: boolean
  readonly allowDelayedStart: boolean
  readonly reconnectIntervalMs: number
  readonly sessionTtlSeconds: number
  readonly statusIntervalMs: number
  readonly maxWritesInFlight: number
  readonly pageSize: number
  readonly leaseWindowMs: number
  readonly scheduler: SchedulerLike
}

/** An endpoint: `host:port`, `http://host:port` or `https://host:port` (IPv6 in brackets). */
export const ENDPOINT =
  /^(?:(https?):\/\/)?[^/\s:]+(?::\d+)?$|^(?:(https?):\/\/)?\[[0-9a-fA-F:.]+\](?::\d+)?$/

/** Checks the options and fills in the defaults. @throws TypeError saying what was expected. */
export function resolve(options: EtcdStoreOptions): Resolved {
  const endpoints: readonly unknown[] = options.endpoints ?? ['127.0.0.1:2379']
  if (!Array.isArray(endpoints) || endpoints.length === 0) {
    throw new TypeError(
      `${NAME}: endpoints: expected a non-empty array of URLs, got ${show(endpoints)}`,
    )
  }
  const checked: string[] = []
  for (const endpoint of endpoints) {
    if (typeof endpoint !== 'string' || !ENDPOINT.test(endpoint)) {
      throw new TypeError(
        `${NAME}: endpoints: expected 'host:port', 'http://host:port' or 'https://host:port', got ${show(endpoint)}`,
      )
    }
    checked.push(endpoint)
  }
  const secure = checked.filter((endpoint) => endpoint.startsWith('https://')).length
  if (secure > 0 && secure < endpoints.length) {
    throw new TypeError(
      `${NAME}: endpoints: expected one scheme for every endpoint (all https or none), got ${show(checked.join(', '))}`,
    )
  }
  const tlsOptions = options.tls
  const tls: ClientTls | undefined =
    tlsOptions === undefined
      ? undefined
      : {
          ca: pem('ca', tlsOptions.ca),
          cert: pem('cert', tlsOptions.cert),
          key: pem('key', tlsOptions.key),
          insecureSkipVerify: tlsOptions.insecureSkipVerify === true,
        }
  if (tls && (tls.cert === undefined) !== (tls.key === undefined)) {
    throw new TypeError(
      `${NAME}: tls: give cert and key together (a client certificate needs its key)`,
    )
  }
  if (options.auth !== undefined) {
    const { username, password } = options.auth
    if (typeof username !== 'string' || username === '' || typeof password !== 'string') {
      throw new TypeError(
        `${NAME}: auth: expected { username, password } as strings, got ${show(options.auth)}`,
      )
    }
  }
  const ms = (name: string, value: Duration | undefined, fallback: Duration) =>
    toMillis(value ?? fallback, `${NAME}: ${name}`)
  const positive = (name: string, value: Duration | undefined, fallback: Duration) => {
    const result = ms(name, value, fallback)
    if (result <= 0)
      throw new TypeError(`${NAME}: ${name}: expected a positive duration, got ${show(value)}`)
    return result
  }
  const count = (name: string, value: number | undefined, fallback: number) => {
    const result = value ?? fallback
    if (!Number.isInteger(result) || result < 1) {
      throw new TypeError(`${NAME}: ${name}: expected an integer of at least 1, got ${show(value)}`)
    }
    return result
  }
  return {
    endpoints: checked,
    tls,
    dialTimeoutMs: positive('dialTimeout', options.dialTimeout, '1s'),
    operationTimeoutMs: positive('operationTimeout', options.operationTimeout, '3s'),
    autoCompactMs: ms('autoCompact', options.autoCompact, 0),
    resyncAfterReconnect: options.resyncAfterReconnect === true,
    allowDelayedStart: options.allowDelayedStart === true,
    reconnectIntervalMs: positive('reconnectInterval', options.reconnectInterval, '2s'),
    sessionTtlSeconds: Math.ceil(positive('sessionTtl', options.sessionTtl, '5s') / 1000),
    statusIntervalMs: positive('statusInterval', options.statusInterval, '5s'),
    maxWritesInFlight: count('maxWritesInFlight', options.maxWritesInFlight, 64),
    pageSize: count('pageSize', options.pageSize, 1000),
    leaseWindowMs: ms('leaseWindow', options.leaseWindow, '1s'),
    scheduler: options.scheduler ?? asyncScheduler,
  }
}

function pem(
  name: 'ca' | 'cert' | 'key',
  value: string | Uint8Array | undefined,
): Buffer | undefined {
  if (value === undefined) return undefined
  let bytes: Buffer
  if (typeof value === 'string') bytes = Buffer.from(value, 'utf8')
  else if (value instanceof Uint8Array) bytes = toBuffer(value)
  else throw new TypeError(`${NAME}: tls.${name}: expected PEM text or bytes, got ${show(value)}`)
  try {
    if (name === 'key') createPrivateKey(bytes)
    else new X509Certificate(bytes)
  } catch (error) {
    throw new TypeError(
      `${NAME}: tls.${name}: expected a PEM ${name === 'key' ? 'private key' : 'certificate'}, got something else (${describe(error)})`,
      { cause: error },
    )
  }
  return bytes
}
