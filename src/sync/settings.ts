import { asyncScheduler } from 'rxjs'
import { identity, type Codec } from '../core/codec.js'
import { toMillis } from '../core/duration.js'
import { checkBackoff, DEFAULT_JITTER, type BackoffOptions } from '../internal/backoff.js'
import type { AckRules } from './courier.js'
import type { ConsumerOptions, DatasyncOptions, PersistOptions } from './types.js'

/** {@link DatasyncOptions} checked, with their defaults applied. */
export interface DatasyncSettings extends AckRules {
  readonly maxInFlight: number
  readonly resyncAfterReconnect: boolean
  /** The per-key retry backoff (`keyRetry`). */
  readonly keyRetry: BackoffOptions
  /** The anti-entropy period, or undefined when off. */
  readonly antiEntropyMs: number | undefined
  readonly persist: PersistSettings | undefined
}

/**
 * Checks the options of `createDatasync` and applies their defaults.
 *
 * @throws TypeError naming the option, what was expected and what came.
 */
export function resolveSettings(options: DatasyncOptions): DatasyncSettings {
  const ackTimeoutMs = toMillis(options.ackTimeout ?? '10s', 'ackTimeout')
  const retryDelayMs = toMillis(options.retryDelay ?? '1s', 'retryDelay')
  const policy = options.onAckFailure ?? 'continue'
  const maxRetries = options.maxRetries ?? 3
  const maxInFlight = options.maxInFlight ?? 1
  if (!['continue', 'retry', 'halt'].includes(policy)) {
    throw new TypeError(
      `onAckFailure: expected 'continue', 'retry' or 'halt', got ${JSON.stringify(policy)}`,
    )
  }
  checkCount('maxInFlight', maxInFlight, 1)
  checkCount('maxRetries', maxRetries, 0)
  return {
    scheduler: options.scheduler ?? asyncScheduler,
    ackTimeoutMs,
    retryDelayMs,
    policy,
    maxRetries,
    maxInFlight,
    resyncAfterReconnect: options.resyncAfterReconnect === true,
    keyRetry: resolveKeyRetry(options.keyRetry ?? {}),
    antiEntropyMs:
      options.antiEntropy === undefined ? undefined : toMillis(options.antiEntropy, 'antiEntropy'),
    persist: resolvePersist(options.persist),
  }
}

function resolveKeyRetry(options: NonNullable<DatasyncOptions['keyRetry']>): BackoffOptions {
  return checkBackoff(
    'keyRetry',
    {
      firstMs: toMillis(options.base ?? '1s', 'keyRetry.base'),
      maxMs: toMillis(options.cap ?? '5m', 'keyRetry.cap'),
      factor: options.factor ?? 2,
      jitter: options.jitter ?? DEFAULT_JITTER,
      ...(options.random === undefined ? {} : { random: options.random }),
    },
    { firstMs: 'base', maxMs: 'cap' },
  )
}

/** {@link PersistOptions} with their durations in milliseconds. */
export type PersistSettings = PersistOptions & {
  readonly everyMs: number
  readonly identityWaitMs: number
}

function resolvePersist(options: PersistOptions | undefined): PersistSettings | undefined {
  if (options === undefined) return undefined
  const to = options.to as Partial<PersistOptions['to']> | undefined
  if (typeof to?.load !== 'function' || typeof to.save !== 'function') {
    throw new TypeError(
      'persist.to: expected a SnapshotPersistence (name, load(), save(text)), such as fileSnapshotPersistence(path) from rx-datasync/snapshot-file',
    )
  }
  return {
    ...options,
    everyMs: toMillis(options.every ?? '2s', 'persist.every'),
    identityWaitMs: toMillis(options.identityWait ?? '1s', 'persist.identityWait'),
  }
}

/** A consumer's {@link ConsumerOptions} checked, with their defaults applied. */
export interface ConsumerSettings<T, R> {
  readonly prefixes: readonly string[]
  readonly codec: Codec<T, R>
  readonly maxInFlight: number
  readonly decode: 'eager' | 'lazy'
}

/**
 * Checks a registration (`taken` says whether another consumer has the name) and applies the
 * defaults, the orchestrator's `maxInFlight` among them.
 *
 * @throws TypeError naming the consumer and the option, what was expected and what came.
 */
export function resolveConsumer<T, R>(
  name: string,
  options: ConsumerOptions<T, R>,
  defaultMaxInFlight: number,
  taken: (name: string) => boolean,
): ConsumerSettings<T, R> {
  if (typeof name !== 'string' || name === '') {
    throw new TypeError(`register: expected a non-empty consumer name, got ${JSON.stringify(name)}`)
  }
  if (taken(name)) {
    throw new TypeError(`register: a consumer named '${name}' is already registered`)
  }
  const prefixes = checkPrefixes(`register '${name}'`, options.prefixes)
  const maxInFlight = options.maxInFlight ?? defaultMaxInFlight
  checkCount(`register '${name}': maxInFlight`, maxInFlight, 1)
  const decode = options.decode ?? 'eager'
  if (decode !== 'eager' && decode !== 'lazy') {
    throw new TypeError(
      `register '${name}': decode: expected 'eager' or 'lazy', got ${JSON.stringify(decode)}`,
    )
  }
  return {
    prefixes,
    codec: options.codec ?? (identity<R>() as unknown as Codec<T, R>),
    maxInFlight,
    decode,
  }
}

/**
 * A consumer's prefixes: a non-empty array of strings (copied).
 *
 * @throws TypeError naming `what`, what was expected and what came.
 */
export function checkPrefixes(what: string, prefixes: unknown): readonly string[] {
  if (
    !Array.isArray(prefixes) ||
    prefixes.length === 0 ||
    !prefixes.every((p) => typeof p === 'string')
  ) {
    throw new TypeError(
      `${what}: expected prefixes as a non-empty array of strings, got ${JSON.stringify(prefixes)}`,
    )
  }
  return [...prefixes] as string[]
}

function checkCount(what: string, value: number, min: number): void {
  if (!(Number.isInteger(value) || value === Infinity) || value < min) {
    throw new TypeError(`${what}: expected an integer of at least ${min}, got ${value}`)
  }
}
