import type * as JetStreamModule from '@nats-io/jetstream'
import type * as KvModule from '@nats-io/kv'
import type * as TransportModule from '@nats-io/transport-node'
import type { NatsConnection } from '@nats-io/transport-node'
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream'
import type { KV } from '@nats-io/kv'
import { requirePeer } from '../../internal/optional-peer.js'

const FEATURE = 'rx-datasync/nats'

/**
 * The NATS clients' runtime exports, loaded when `rx-datasync/nats` is imported: without the
 * `@nats-io/*` packages installed the import fails with a `MissingPeerError` naming the one to
 * install. Types are imported from the packages directly.
 */
export const { connect, createInbox, credsAuthenticator, headers, nanos, nkeyAuthenticator, nuid } =
  requirePeer('@nats-io/transport-node', FEATURE) as typeof TransportModule
export const { AckPolicy, DeliverPolicy, StorageType, jetstream, jetstreamManager } = requirePeer(
  '@nats-io/jetstream',
  FEATURE,
) as typeof JetStreamModule
export const { Kvm } = requirePeer('@nats-io/kv', FEATURE) as typeof KvModule

/** What every operation and watch works with, once connected. */
export interface Handles {
  readonly nc: NatsConnection
  readonly js: JetStreamClient
  readonly jsm: JetStreamManager
  /** The bucket (a placeholder-free KV only when the link was made for a bucket). */
  readonly kv: KV
  /** The bucket's stream: `KV_<bucket>`. */
  readonly stream: string
  /** The subject prefix of the bucket's keys: `$KV.<bucket>.` */
  readonly prefix: string
}
