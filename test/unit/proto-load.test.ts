import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { ConfigError } from 'rx-datasync'
import { loadProtoCodec } from 'rx-datasync/proto'

const fixture = (name: string) =>
  fileURLToPath(new URL(`../fixtures/proto/${name}`, import.meta.url))

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise
  } catch (error) {
    if (error instanceof Error) return error
    throw new Error(`rejected with a non-error: ${String(error)}`)
  }
  throw new Error('the promise did not reject')
}

describe('loadProtoCodec', () => {
  it('loads a .proto file at run time, well-known imports included', async () => {
    const codec = await loadProtoCodec(fixture('types.proto'), 'fixture.types.v1.WellKnown', {
      form: 'json',
    })
    expect(codec.name).toBe('proto-json:fixture.types.v1.WellKnown')
    const raw = new TextEncoder().encode('{"at":"2024-01-02T03:04:05Z","ttl":"2s"}')
    expect(new TextDecoder().decode(codec.encode(codec.decode(raw)))).toBe(
      '{"at":"2024-01-02T03:04:05Z","ttl":"2s"}',
    )
  })

  it('resolves imports relative to the importing file, and takes several files', async () => {
    const located = await loadProtoCodec<{ interface?: { name?: string }; at?: { x?: number } }>(
      fixture('other.proto'),
      'fixture.other.v1.Located',
    )
    const decoded = located.decode(located.encode({ interface: { name: 'eth0' }, at: { x: 2 } }))
    expect(decoded.interface?.name).toBe('eth0')
    expect(decoded.at?.x).toBe(2)
    const point = await loadProtoCodec(
      [fixture('other.proto'), fixture('types.proto')],
      '.fixture.types.v1.Point',
    )
    expect(point.name).toBe('proto:fixture.types.v1.Point')
    expect(point.form).toBe('binary')
  })

  it('names the file it cannot read', async () => {
    const missing = fixture('missing.proto')
    const error = await rejection(loadProtoCodec(missing, 'x.Y'))
    expect(error).toBeInstanceOf(ConfigError)
    expect(error.message).toMatch(
      new RegExp(
        `^${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot load the protobuf schema \\(or a file it imports\\): ENOENT`,
      ),
    )
  })

  it('names the file and the line it cannot parse', async () => {
    const error = await rejection(
      loadProtoCodec([fixture('types.proto'), fixture('broken.proto')], 'fixture.broken.v1.Broken'),
    )
    if (!(error instanceof ConfigError)) throw error
    expect(error.source).toBe(fixture('broken.proto'))
    expect(error.message).toContain('broken.proto: cannot load the protobuf schema')
    expect(error.message).toContain('line 6')
  })

  it('names a type the files do not declare, with the message types they do', async () => {
    const error = await rejection(loadProtoCodec(fixture('other.proto'), 'fixture.other.v1.Iface'))
    expect(error).toBeInstanceOf(ConfigError)
    expect(error.message).toContain("no message type 'fixture.other.v1.Iface'; declared: ")
    expect(error.message).toContain('fixture.other.v1.Interface, fixture.other.v1.Located')
    expect(error.message).toContain('fixture.types.v1.Point')
    expect(error.message).not.toContain('google.protobuf')
    const notMessage = await rejection(
      loadProtoCodec(fixture('types.proto'), 'fixture.types.v1.Color'),
    )
    expect(notMessage.message).toContain("no message type 'fixture.types.v1.Color' (it is an enum)")
    const pkg = await rejection(loadProtoCodec(fixture('types.proto'), 'fixture.types'))
    expect(pkg.message).toContain("no message type 'fixture.types' (it is a package)")
  })

  it('refuses arguments of the wrong kind', async () => {
    await expect(loadProtoCodec([], 'x.Y')).rejects.toThrow(TypeError)
    await expect(loadProtoCodec([3] as unknown as string[], 'x.Y')).rejects.toThrow(
      'loadProtoCodec: expected a .proto file name or a non-empty array of them, got [3]',
    )
    await expect(loadProtoCodec(fixture('types.proto'), '')).rejects.toThrow(
      `loadProtoCodec: expected a message type name like 'pkg.Msg', got ""`,
    )
  })
})
