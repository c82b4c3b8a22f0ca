import { describe, expect, it } from 'vitest'
import { applyChanges, createSnapshot, revision } from '../../src/index.js'

describe('snapshots without immer', () => {
  it('refuse changes in place, and applyChanges shares the unchanged entries', () => {
    const a = { key: 'a', value: 1, revision: revision(1n) }
    const b = { key: 'b', value: 2, revision: revision(1n) }
    const snapshot = createSnapshot([a, b])
    const writable = snapshot as Map<string, typeof a>
    expect(() => writable.set('c', a)).toThrow(/a snapshot is frozen/)
    expect(() => writable.delete('a')).toThrow(TypeError)
    expect(() => {
      writable.clear()
    }).toThrow(TypeError)
    expect(Object.isFrozen(snapshot)).toBe(true)
    const next = applyChanges(snapshot, [
      { op: 'put', key: 'c', value: 3, revision: revision(2n) },
      { op: 'delete', key: 'b', revision: revision(2n) },
    ])
    expect([...next.keys()]).toEqual(['a', 'c'])
    expect(next.get('a')).toBe(a)
    expect([...snapshot.keys()]).toEqual(['a', 'b'])
    expect(() => (next as Map<string, typeof a>).set('x', a)).toThrow(TypeError)
  })
})
