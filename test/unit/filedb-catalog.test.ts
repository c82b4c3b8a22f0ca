import { describe, expect, it } from 'vitest'
import { ConfigError, UnavailableError, type DatasyncError } from '../../src/core/errors.js'
import type { Change, KeyValue } from '../../src/core/events.js'
import { Catalog } from '../../src/backends/filedb/catalog.js'
import type { ReadOutcome } from '../../src/backends/filedb/files.js'
import { parseDataFile } from '../../src/backends/filedb/format.js'
import { r } from './support.js'

// The catalog is the store's in-memory model: no disk. Each test hands it what a scan would
// have read (the parse of a file's text, an error, or "gone") and checks what it serves.

const decoder = new TextDecoder()
const text = (bytes: Uint8Array | undefined): string | undefined =>
  bytes === undefined ? undefined : decoder.decode(bytes)

/** What reading `path` with this content gives (as the file edge parses it). */
function read(path: string, content: string): ReadOutcome {
  try {
    return { kind: 'ok', parsed: parseDataFile(path, content) }
  } catch (error) {
    return { kind: 'error', error: error as DatasyncError }
  }
}

/** A JSON data file holding `data`. */
function json(path: string, data: Record<string, unknown>): ReadOutcome {
  const entries = Object.entries(data).map(([key, value]) => ({ key, value }))
  return read(path, JSON.stringify({ data: entries }))
}

const GONE: ReadOutcome = { kind: 'gone' }

function catalog() {
  const reported: DatasyncError[] = []
  const model = new Catalog((error) => reported.push(error))
  const apply = (...updates: [string, ReadOutcome][]) =>
    model.apply(new Map(updates)).map(describeChange)
  return { model, reported, apply }
}

function describeChange(change: Change<Uint8Array>): string {
  const prev = change.prev === undefined ? '' : ` (was ${text(change.prev)})`
  const value = change.op === 'put' ? ` = ${text(change.value)}` : ''
  return `${change.op} ${change.key}${value}${prev} @${change.revision}`
}

const served = (items: readonly KeyValue<Uint8Array>[]) =>
  items.map((item) => [item.key, text(item.value), item.revision])

describe('filedb catalog', () => {
  it('serves the keys of the files read, in key order, at one revision per batch that changed something', () => {
    const { model, apply } = catalog()
    expect(model.revision).toBe(r(0))
    expect(apply(['/d/b.json', json('/d/b.json', { z: 1, a: 'x' })])).toEqual([
      'put a = "x" @1',
      'put z = 1 @1',
    ])
    expect(model.revision).toBe(r(1))
    expect(served(model.itemsUnder(['']))).toEqual([
      ['a', '"x"', r(1)],
      ['z', '1', r(1)],
    ])
    expect(text(model.get('z')?.value)).toBe('1')
    expect(model.get('missing')).toBeUndefined()
    expect(model.snapshot(['z'], 'rescan')).toEqual({
      type: 'snapshot',
      revision: r(1),
      items: [model.get('z')],
      cause: 'rescan',
    })
    // A batch that changes nothing keeps the revision.
    expect(apply(['/d/b.json', json('/d/b.json', { a: 'x', z: 1 })])).toEqual([])
    expect(model.revision).toBe(r(1))
  })

  it('diffs a rewritten file against what it served: changed keys with prev, dropped keys deleted', () => {
    const { model, apply } = catalog()
    apply(['/d/a.json', json('/d/a.json', { k1: 1, k2: 2, k3: 3 })])
    // Reformatting changes nothing: values compare by their JSON text.
    expect(
      apply([
        '/d/a.json',
        read(
          '/d/a.json',
          '{"data":[{"key":"k1","value":1},\n {"key":"k2","value":2}, {"key":"k3","value":3}]}',
        ),
      ]),
    ).toEqual([])
    expect(apply(['/d/a.json', json('/d/a.json', { k1: 1, k2: 20, k4: 4 })])).toEqual([
      'put k2 = 20 (was 2) @2',
      'delete k3 (was 3) @2',
      'put k4 = 4 @2',
    ])
    expect(apply(['/d/a.json', GONE])).toEqual([
      'delete k1 (was 1) @3',
      'delete k2 (was 20) @3',
      'delete k4 (was 4) @3',
    ])
    expect(model.itemsUnder([''])).toEqual([])
    expect(model.knownFiles()).toEqual(new Set())
  })

  it('a file moved in one batch (gone here, read there) changes nothing', () => {
    const { model, apply } = catalog()
    apply(['/d/a.json', json('/d/a.json', { m: 1 })])
    expect(apply(['/d/a.json', GONE], ['/e/moved.json', json('/e/moved.json', { m: 1 })])).toEqual(
      [],
    )
    expect(model.revision).toBe(r(1))
    expect(model.knownFiles()).toEqual(new Set(['/e/moved.json']))
  })

  it('a key in two files comes from the file whose path sorts first, with one warning naming both', () => {
    const { model, reported, apply } = catalog()
    expect(
      apply(
        ['/d/b.yaml', json('/d/b.yaml', { dup: 'from b', onlyB: 2 })],
        ['/d/a.json', json('/d/a.json', { dup: 'from a' })],
      ),
    ).toEqual(['put dup = "from a" @1', 'put onlyB = 2 @1'])
    expect(reported).toHaveLength(1)
    expect(reported[0]).toBeInstanceOf(ConfigError)
    expect(reported[0]!.message).toBe(
      "/d/b.yaml: key 'dup' is also defined in /d/a.json, whose path sorts first: that definition is used; define each key in one file",
    )
    // The loser changes: nothing is served differently, and the same files warn no more.
    expect(apply(['/d/b.yaml', json('/d/b.yaml', { dup: 'from b, changed', onlyB: 2 })])).toEqual(
      [],
    )
    expect(text(model.get('dup')?.value)).toBe('"from a"')
    expect(reported).toHaveLength(1)
    // The winner drops the key: the next file's definition takes over, as a put with prev.
    expect(apply(['/d/a.json', json('/d/a.json', {})])).toEqual([
      'put dup = "from b, changed" (was "from a") @2',
    ])
    // Back in two files: warned again.
    apply(['/d/a.json', json('/d/a.json', { dup: 'from a' })])
    expect(reported).toHaveLength(2)
    expect(apply(['/d/b.yaml', GONE], ['/d/a.json', GONE])).toEqual([
      'delete dup (was "from a") @4',
      'delete onlyB (was 2) @4',
    ])
    expect(reported).toHaveLength(2)
  })

  it('a file that breaks keeps its last good keys; the problem names the file and line until it is fixed', () => {
    const { model, reported, apply } = catalog()
    const file = '/d/conf.yaml'
    apply([file, read(file, 'data:\n  - key: c/x\n    value: 1\n  - key: c/y\n    value: 2\n')])
    expect(model.problem()).toBeUndefined()
    const broken = read(
      file,
      'data:\n  - key: c/x\n    value: 1\n  - key: c/y\n    value: [2, 3\n  - key: c/z\n    value: 4\n',
    )
    expect(apply([file, broken])).toEqual([])
    expect(served(model.itemsUnder(['c/']))).toEqual([
      ['c/x', '1', r(1)],
      ['c/y', '2', r(1)],
    ])
    const problem = model.problem()
    expect(problem).toBeInstanceOf(ConfigError)
    expect(problem!.message).toContain(`${file}:6`)
    expect(problem!.message).toMatch(/not valid YAML/)
    expect(reported).toEqual([problem])
    // Read again, broken alike: not reported again.
    apply([
      file,
      read(
        file,
        'data:\n  - key: c/x\n    value: 1\n  - key: c/y\n    value: [2, 3\n  - key: c/z\n    value: 4\n',
      ),
    ])
    expect(reported).toHaveLength(1)
    // The file is known while it is broken (a scan must tell when it is gone).
    expect(model.knownFiles()).toEqual(new Set([file]))
    expect(apply([file, json(file, { 'c/x': 1, 'c/y': 3, 'c/z': 4 })])).toEqual([
      'put c/y = 3 (was 2) @2',
      'put c/z = 4 @2',
    ])
    expect(model.problem()).toBeUndefined()
  })

  it('a file that never read well is known by its problem, and forgotten when gone', () => {
    const { model, apply } = catalog()
    const error = new UnavailableError('filedb', '/d/secret.json: cannot read the file (EACCES)')
    expect(apply(['/d/secret.json', { kind: 'error', error }])).toEqual([])
    expect(model.knownFiles()).toEqual(new Set(['/d/secret.json']))
    expect(model.problem()).toBe(error)
    apply(['/d/secret.json', GONE])
    expect(model.knownFiles()).toEqual(new Set())
    expect(model.problem()).toBeUndefined()
  })

  it('names the directory problem whose path sorts first, else the file problem whose path sorts first', () => {
    const { model, reported, apply } = catalog()
    const fileB = new UnavailableError('filedb', '/d/b.json: cannot read the file (EACCES)')
    const fileA = new UnavailableError('filedb', '/d/a.json: cannot read the file (EACCES)')
    apply(
      ['/d/b.json', { kind: 'error', error: fileB }],
      ['/d/a.json', { kind: 'error', error: fileA }],
    )
    expect(model.problem()).toBe(fileA)
    const dirY = new UnavailableError('filedb', '/d/y: cannot list the directory (EACCES)')
    const dirX = new UnavailableError('filedb', '/d/x: cannot list the directory (EACCES)')
    model.setDirProblem('/d/y', dirY)
    model.setDirProblem('/d/x', dirX)
    expect(model.problem()).toBe(dirX)
    // The same problem again is no news.
    model.setDirProblem(
      '/d/x',
      new UnavailableError('filedb', dirX.message.slice('filedb: '.length)),
    )
    expect(reported).toEqual([fileB, fileA, dirY, dirX])
    model.forgetDirProblems((dir) => dir === '/d/x')
    expect(model.problem()).toBe(dirY)
    model.forgetDirProblems(() => true)
    expect(model.problem()).toBe(fileA)
  })

  it('reports a file’s warnings when they change, not each time it is read', () => {
    const { model, reported, apply } = catalog()
    const file = '/d/twice.yaml'
    const twice = 'data:\n  - key: k\n    value: 1\n  - key: k\n    value: 2\n'
    expect(apply([file, read(file, twice)])).toEqual(['put k = 1 @1'])
    expect(reported).toHaveLength(1)
    expect(reported[0]).toBeInstanceOf(ConfigError)
    expect(reported[0]!.message).toContain(`${file}:4`)
    apply([file, read(file, twice)])
    expect(reported).toHaveLength(1)
    apply([file, read(file, 'data:\n  - key: k\n    value: 1\n')])
    apply([file, read(file, twice)])
    expect(reported).toHaveLength(2)
    expect(text(model.get('k')?.value)).toBe('1')
  })

  it('ignores a file read while it changed (unsettled): it is read again later', () => {
    const { model, apply } = catalog()
    apply(['/d/a.json', json('/d/a.json', { a: 1 })])
    expect(apply(['/d/a.json', { kind: 'unsettled' }])).toEqual([])
    expect(text(model.get('a')?.value)).toBe('1')
    expect(model.problem()).toBeUndefined()
  })
})
