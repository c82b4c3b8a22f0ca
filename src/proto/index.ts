export { protoCodec, type ProtoCodec, type ProtoCodecOptions, type ProtoForm } from './codec.js'
export { loadProtoCodec } from './load.js'
