import type * as JetStreamModule from '@nats-io/jetstream'
import type * as KvModule from '@nats-io/kv'
import type * as TransportModule from '@nats-io/transport-node'
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
