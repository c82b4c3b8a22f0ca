import type * as Protobuf from 'protobufjs'
import type * as ProtoJson from 'protobufjs/ext/protojson.js'
import { requirePeer } from '../internal/optional-peer.js'

/**
 * protobufjs, loaded when `rx-datasync/proto` is imported: without it installed the import fails
 * with a `MissingPeerError` saying `npm install protobufjs`. Types are imported from
 * 'protobufjs' directly.
 */
export const protobuf = requirePeer('protobufjs', 'rx-datasync/proto') as typeof Protobuf

/** protobufjs's ProtoJSON mapping (the `json` format of {@link protoCodec}). */
export const protojson = requirePeer(
  'protobufjs/ext/protojson.js',
  'rx-datasync/proto',
) as typeof ProtoJson
