import type { ReflectionObject, Root } from 'protobufjs'
import { ConfigError } from '../core/errors.js'
import { protoCodec, type ProtoCodec, type ProtoCodecOptions } from './codec.js'
import { protobuf } from './protobufjs.js'

/**
 * Loads .proto files at run time and makes a {@link protoCodec} for one message type of them.
 * Imports resolve relative to the importing file; the well-known types (`google/protobuf/
 * timestamp.proto`, `duration.proto`, `wrappers.proto`, `struct.proto`, `any.proto`,
 * `field_mask.proto`, `empty.proto`) are built in. Field names follow protobufjs's default
 * (lowerCamelCase). For other import paths, build the root yourself (`new protobuf.Root()` with
 * your `resolvePath`) and call {@link protoCodec}.
 *
 * @param files - A .proto file, or several, read with protobufjs's loader (relative paths from
 *   the working directory under Node). Preprocessed .json descriptors load too.
 * @param typeName - The message type, fully qualified: `'pkg.Msg'`.
 * @returns The codec, once the files are read and parsed.
 * @throws ConfigError (the promise rejects) naming the file that cannot be read or parsed, or the
 *   type that is not a message of the files, with the message types they do declare.
 *
 * @example
 * ```ts
 * import { createDatasync, createMemoryStore } from 'rx-datasync'
 * import { loadProtoCodec } from 'rx-datasync/proto'
 *
 * const route = await loadProtoCodec('proto/routes.proto', 'net.v1.Route', { form: 'json' })
 * const sync = createDatasync(createMemoryStore())
 * sync.register('routes', { prefixes: ['config/routes/'], codec: route })
 * ```
 */
export async function loadProtoCodec<T extends object = Record<string, unknown>>(
  files: string | readonly string[],
  typeName: string,
  options: ProtoCodecOptions = {},
): Promise<ProtoCodec<T>> {
  const list = typeof files === 'string' ? [files] : [...(files as unknown[])]
  if (list.length === 0 || !list.every((file): file is string => typeof file === 'string')) {
    throw new TypeError(
      `loadProtoCodec: expected a .proto file name or a non-empty array of them, got ${JSON.stringify(files)}`,
    )
  }
  if (typeof typeName !== 'string' || typeName === '') {
    throw new TypeError(
      `loadProtoCodec: expected a message type name like 'pkg.Msg', got ${JSON.stringify(typeName)}`,
    )
  }
  const source = list.join(', ')
  const root = new protobuf.Root()
  // One file at a time, so a read or parse error names its file (protobufjs says only the line).
  for (const file of list) {
    try {
      await root.load(file)
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      throw new ConfigError(
        file,
        undefined,
        `cannot load the protobuf schema (or a file it imports): ${message}`,
        { cause: error },
      )
    }
  }
  const found = root.lookup(typeName.replace(/^\./, ''))
  if (!(found instanceof protobuf.Type)) {
    const declared = messageTypes(root)
    throw new ConfigError(
      source,
      undefined,
      `no message type '${typeName}'${found === null ? '' : ` (it is ${kindOf(found)})`}; declared: ${declared.length > 0 ? declared.join(', ') : 'none'}`,
    )
  }
  return protoCodec<T>(found, options)
}

/** What a reflection object that is not a message type is, for messages. */
function kindOf(object: ReflectionObject): string {
  if (object instanceof protobuf.Enum) return 'an enum'
  if (object instanceof protobuf.Service) return 'a service'
  if (object instanceof protobuf.Field) return 'a field'
  return 'a package'
}

/** The message types a root declares, outside `google.protobuf`, fully qualified. */
function messageTypes(root: Root): string[] {
  const names: string[] = []
  const visit = (object: ReflectionObject) => {
    if (object instanceof protobuf.Type) names.push(object.fullName.slice(1))
    if (object instanceof protobuf.Namespace && object.fullName !== '.google') {
      for (const nested of object.nestedArray) visit(nested)
    }
  }
  for (const nested of root.nestedArray) visit(nested)
  return names.sort()
}
