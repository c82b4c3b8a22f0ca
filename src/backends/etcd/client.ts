import { createRequire } from 'node:module'
import type * as Grpc from '@grpc/grpc-js'
import type { IPolicy } from 'cockatiel'
import type { IOptions } from 'etcd3'
import { describe } from '../../core/errors.js'
import { Etcd3, EtcdInvalidAuthTokenError, castGrpcError, isRecoverableError } from './etcd3.js'
import { NAME, isTooLarge } from './errors.js'
import { decodeWatchResponse, type WireWatchResponse } from './wire/decode.js'

/** TLS material, already read from files. */
export interface ClientTls {
  readonly ca: Buffer | undefined
  readonly cert: Buffer | undefined
  readonly key: Buffer | undefined
  readonly insecureSkipVerify: boolean
}

/** What the client is built from. */
export interface ClientSettings {
  readonly endpoints: readonly string[]
  readonly tls: ClientTls | undefined
  readonly auth: { readonly username: string; readonly password: string } | undefined
  /** The longest pause between two connection attempts of gRPC's own reconnect loop. */
  readonly reconnectIntervalMs: number
  /** The store's clock (its scheduler's `now`). */
  readonly now: () => number
}

/** The parts of etcd3's connection pool the store reaches into (it has no public API for them). */
interface PoolInternals {
  hosts?: { channelCredentials: unknown }[]
  authenticator?: { credentials: unknown; invalidateMetadata?: () => void }
  withConnection<R>(
    service: 'Watch' | 'KV',
    fn: (args: {
      resource: unknown
      client: Grpc.Client
      metadata: Grpc.Metadata
    }) => R | PromiseLike<R>,
  ): Promise<R>
  markFailed(resource: unknown, error: Error): void
}

/** etcd3's own copy of grpc-js: credentials must come from the copy that builds its channels. */
function grpcOfEtcd3(): typeof Grpc {
  const require = createRequire(import.meta.url)
  return createRequire(require.resolve('etcd3'))('@grpc/grpc-js') as typeof Grpc
}

/** A reply may be this large: pages aim far below it, and one value is at most 1.5 MiB by default. */
const MAX_REPLY_BYTES = 64 * 1024 * 1024
/** The most a member that failed three times in a row is skipped before it is tried again. */
const MEMBER_PAUSE_MS = 1_000
/** Consecutive connection faults after which a member is skipped for a while. */
const MEMBER_FAULTS = 3

/**
 * The signal the fault policies hand to etcd3 (which never reads it): one shared signal, not a
 * new AbortController per call and per member (they showed in the profile of puts).
 */
const NEVER_ABORTED = new AbortController().signal

/** Retries of a call that failed on a connection fault (etcd3's default). */
const GLOBAL_RETRIES = 3

/**
 * etcd3's global fault policy as its default (a call that failed on a connection fault is tried
 * again at once, up to three times, each on another member), except for a request refused for
 * its size: gRPC's RESOURCE_EXHAUSTED is a "recoverable" error to etcd3, but the same request
 * would be refused every time, so it fails at once (issue 16: a 2 MiB put was retried, then
 * reported as etcd being unreachable).
 */
class GlobalRetry {
  async execute<T>(
    fn: (context: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T,
  ): Promise<T> {
    /** The last failure that said why (see {@link says}). */
    let telling: unknown
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn({ signal: NEVER_ABORTED, attempt })
      } catch (error) {
        if (says(error)) telling = error
        const again =
          attempt < GLOBAL_RETRIES &&
          error instanceof Error &&
          isRecoverableError(error) &&
          !isTooLarge(error)
        if (!again) throw says(error) ? error : (telling ?? error)
      }
    }
  }
}

/**
 * Whether a failure says why: gRPC's "No connection established. Last error: null" only says
 * that the channel was closed while connecting, which another call's failure does (etcd3 resets a
 * member's channels after a connection fault), so a TLS refusal met by one call could end up
 * reported as that. Retries report the last failure that said why.
 */
function says(error: unknown): boolean {
  return !(error instanceof Error && error.message.includes('Last error: null'))
}

/** Thrown (and caught by etcd3, which moves on to the next member) for a member being skipped. */
class MemberSkipped extends Error {
  override readonly name = 'MemberSkipped'
}

/**
 * etcd3's per-member fault policy (it calls only `execute`): a member that met three connection
 * faults in a row is skipped for a pause, so calls go to the others; but when every member is
 * being skipped, calls go through anyway. A circuit breaker would fail them instead, for seconds
 * after the network came back.
 */
class MemberGuard {
  private faults = 0
  private skipUntil = 0

  constructor(
    private readonly members: readonly MemberGuard[],
    private readonly now: () => number,
    private readonly pauseMs: number,
  ) {}

  get skipping(): boolean {
    return this.skipUntil > this.now()
  }

  async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
    if (this.skipping && this.members.some((member) => !member.skipping)) {
      throw new MemberSkipped('this etcd member is skipped after repeated connection faults')
    }
    try {
      const result = await fn({ signal: NEVER_ABORTED })
      this.faults = 0
      this.skipUntil = 0
      return result
    } catch (error) {
      const fault = error instanceof Error && isRecoverableError(error) && !isTooLarge(error)
      if (fault && ++this.faults >= MEMBER_FAULTS) {
        this.faults = 0
        this.skipUntil = this.now() + this.pauseMs
      }
      throw error
    }
  }
}

function poolOf(client: Etcd3): PoolInternals {
  return (client as unknown as { pool: PoolInternals }).pool
}

/** Identity serializers: requests are encoded and replies decoded by `wire/`. */
const asIs = (buf: Buffer): Buffer => buf

/** The global fault policy each client was built with (the lean calls run under it too). */
const retries = new WeakMap<Etcd3, GlobalRetry>()

/**
 * Builds the etcd3 client. Nothing connects here: gRPC channels are made on the first call.
 *
 * - gRPC keepalive pings every 10 s (etcd's default `--grpc-keepalive-min-time` is 5 s) find a
 *   dead peer that never closed its connection; gRPC's reconnect backoff is capped at the
 *   reconnect interval, so a member that comes back is used again soon.
 * - etcd3's global fault handling is kept (as GlobalRetry): a call that failed on a connection
 *   fault is retried up to three times, each on another member, so a dead member is left behind.
 *   Authentication errors and requests refused for their size are not retried.
 * - A member that failed three times in a row is skipped for up to a second, unless every member
 *   is (see MemberGuard; etcd3's default circuit breaker would fail calls for five seconds even
 *   when the network is back).
 * - Replies up to 64 MiB are accepted (gRPC's default is 4 MiB); listings still page.
 * - `insecureSkipVerify` needs gRPC verify options that etcd3 cannot pass, so the store replaces
 *   the credentials etcd3 made before any channel exists.
 *
 * @throws TypeError when gRPC refuses the TLS material (it checks the PEM when the credentials
 * are made).
 */
export function createClient(settings: ClientSettings): Etcd3 {
  try {
    return buildClient(settings)
  } catch (error) {
    if (error instanceof TypeError) throw error
    throw new TypeError(
      `${NAME}: tls: expected PEM certificates and a PEM private key, got material gRPC refuses (${describe(error)})`,
      { cause: error },
    )
  }
}

function buildClient(settings: ClientSettings): Etcd3 {
  const tls = settings.tls
  const pauseMs = Math.min(MEMBER_PAUSE_MS, settings.reconnectIntervalMs)
  const guards: MemberGuard[] = []
  const options: IOptions = {
    hosts: [...settings.endpoints],
    faultHandling: {
      global: new GlobalRetry() as unknown as IPolicy,
      host: () => {
        const guard = new MemberGuard(guards, settings.now, pauseMs)
        guards.push(guard)
        return guard as unknown as IPolicy
      },
    },
    grpcOptions: {
      'grpc.max_receive_message_length': MAX_REPLY_BYTES,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.initial_reconnect_backoff_ms': Math.min(100, settings.reconnectIntervalMs),
      'grpc.max_reconnect_backoff_ms': Math.max(100, settings.reconnectIntervalMs),
    },
    ...(settings.auth ? { auth: { ...settings.auth } } : {}),
    ...(tls
      ? {
          credentials: {
            // etcd3 types the root certificate as required; grpc-js takes null for the system's.
            rootCertificate: tls.ca as Buffer,
            ...(tls.key ? { privateKey: tls.key } : {}),
            ...(tls.cert ? { certChain: tls.cert } : {}),
          },
        }
      : {}),
  }
  const client = new Etcd3(options)
  retries.set(client, options.faultHandling?.global as unknown as GlobalRetry)
  if (tls?.insecureSkipVerify === true) {
    const grpc = grpcOfEtcd3()
    const credentials = grpc.credentials.createSsl(
      tls.ca ?? null,
      tls.key ?? null,
      tls.cert ?? null,
      {
        rejectUnauthorized: false,
        checkServerIdentity: () => undefined,
      },
    )
    const pool = poolOf(client)
    if (!Array.isArray(pool.hosts) || pool.authenticator === undefined) {
      client.close()
      throw new TypeError(
        'etcd: insecureSkipVerify is not supported by this version of the etcd3 client; give the CA instead',
      )
    }
    for (const host of pool.hosts) host.channelCredentials = credentials
    pool.authenticator.credentials = credentials
  }
  return client
}

/**
 * Makes etcd3 authenticate again at the next call. Its token is cached for the client's life;
 * etcd3 renews it itself for unary calls that meet "invalid auth token", not for streams, so a
 * watch or a keepalive after an etcd restart (simple tokens live in the member's memory) would
 * present the dead token forever.
 */
export function forgetToken(client: Etcd3): void {
  poolOf(client).authenticator?.invalidateMetadata?.()
}

/**
 * A raw watch stream of etcd's Watch service: requests encoded by `wire/encode.ts` are written
 * as they are, each reply arrives decoded by `wire/decode.ts` (`decodeWatchResponse`).
 */
export type WatchStream = Grpc.ClientDuplexStream<Buffer, WireWatchResponse>

/**
 * Opens a watch stream on one member (etcd3 picks it, skipping members whose circuit is open),
 * asking the member to end the stream when it loses its raft leader (`hasleader` metadata, as
 * etcd's Go client does with `WithRequireLeader`): a watch on a member cut off from the
 * cluster would otherwise stay silent. Errors on the stream are cast to etcd3's error classes.
 */
export function openWatchStream(client: Etcd3): Promise<WatchStream> {
  const pool = poolOf(client)
  return pool.withConnection('Watch', ({ resource, client: grpcClient, metadata }) => {
    const leaderOnly = metadata.clone()
    leaderOnly.set('hasleader', 'true')
    const stream = grpcClient.makeBidiStreamRequest(
      '/etcdserverpb.Watch/Watch',
      asIs,
      decodeWatchResponse,
      leaderOnly,
      {},
    )
    stream.on('error', (error: Error) => {
      // As etcd3 does for its own streams: a failure (not our cancel) counts against the member.
      if ((stream as unknown as { writable: boolean }).writable) {
        pool.markFailed(resource, castGrpcError(error))
      }
    })
    return stream
  })
}

/**
 * One unary call of etcd's KV service with a request encoded by hand (`wire/encode.ts`) and its
 * reply decoded by `decode` from the received buffer (`wire/decode.ts`), on the channel etcd3
 * holds for the member it picks, with its auth token, under the same fault policies as etcd3's
 * own calls: another member after a connection fault, a member skipped after repeated faults,
 * the token renewed once when etcd says it is stale. Errors are cast to etcd3's classes.
 */
export function unary<T>(
  client: Etcd3,
  method: 'Range' | 'Put' | 'DeleteRange' | 'Txn',
  request: Buffer,
  decode: (reply: Buffer) => T,
): Promise<T> {
  const pool = poolOf(client)
  const retry = retries.get(client)
  const path = `/etcdserverpb.KV/${method}`
  const once = (): Promise<T> =>
    pool.withConnection('KV', ({ client: grpcClient, metadata }) =>
      new Promise<Buffer>((resolve, reject) => {
        grpcClient.makeUnaryRequest(path, asIs, asIs, request, metadata, {}, (error, reply) => {
          if (error) reject(castGrpcError(error))
          else resolve(reply as Buffer)
        })
      }).then(decode, (error: unknown) => {
        if (error instanceof EtcdInvalidAuthTokenError) {
          // As etcd3 does: authenticate again and call once more.
          forgetToken(client)
          return once()
        }
        throw error
      }),
    )
  return retry === undefined ? once() : retry.execute(once)
}
