import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { filter, firstValueFrom } from 'rxjs'
import { afterEach, describe, expect, it } from 'vitest'
import { createFileStore } from '../../src/backends/filedb/index.js'
import { CodecError, createDatasync } from '../../src/index.js'
import { loadProtoCodec } from '../../src/proto/index.js'
import { recordConsumer } from '../../src/testing/index.js'

interface Point {
  readonly x?: number
  readonly y?: number
}

const protoFile = new URL('../fixtures/proto/types.proto', import.meta.url).pathname

describe('FileDB values decoded as protobuf messages from their JSON form', () => {
  let dir: string | undefined
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it('resyncs and changes typed values; a value of another shape is reported with its key', async () => {
    dir = await mkdtemp(join(tmpdir(), 'rx-datasync-filedb-proto-'))
    const file = join(dir, 'points.yaml')
    await writeFile(file, 'data:\n  - key: p/a\n    value: { x: 1, y: 2 }\n')
    const codec = await loadProtoCodec<Point>(protoFile, 'fixture.types.v1.Point', { form: 'json' })
    const store = createFileStore({ paths: [dir] })
    const sync = createDatasync(store)
    const errors: CodecError[] = []
    sync.errors$.subscribe((error) => {
      if (error instanceof CodecError) errors.push(error)
    })
    const points = recordConsumer(sync.register('points', { prefixes: ['p/'], codec }))
    sync.start()
    try {
      await firstValueFrom(sync.status$.pipe(filter((status) => status.state === 'in-sync')))
      expect(points.state.get('p/a')).toMatchObject({ x: 1, y: 2 })

      // An editor's atomic save: one change with prev and current typed values; 'p/b' is not a Point.
      const next = join(dir, '.points.yaml.tmp')
      await writeFile(
        next,
        'data:\n  - key: p/a\n    value: { x: 5, y: 2 }\n  - key: p/b\n    value: { colour: red }\n',
      )
      await rename(next, file)
      await points.until((state) => state.get('p/a')?.x === 5)
      const change = points.events.at(-1)
      expect(change?.kind).toBe('change')
      if (change?.kind === 'change') {
        expect(change.changes.map((c) => [c.op, c.key, c.prev?.x])).toEqual([['put', 'p/a', 1]])
      }
      expect(points.state.has('p/b')).toBe(false)
      expect(errors.map((error) => error.key)).toEqual(['p/b'])
      expect(errors[0]?.message).toContain('fixture.types.v1.Point')
      expect(points.violations).toEqual([])
    } finally {
      sync.close()
      await store.close()
    }
  })
})
