import { firstValueFrom, take, toArray } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { createMemoryStore, revision, type StoreEvent } from '../../src/index.js'

/** The first `n` events of a watch, collected synchronously (the memory store is synchronous). */
function firstEvents<V>(events: StoreEvent<V>[], n: number): StoreEvent<V>[] {
  return events.slice(0, n)
}

describe('memory store: watch after a revision', () => {
  it('emits only the changes after a revision it still holds, no snapshot', () => {
    const store = createMemoryStore<string>({ initial: { 'a/1': '1' } })
    store.put('a/2', '2').subscribe()
    store.put('b/1', 'x').subscribe()
    store.put('a/1', '3').subscribe()
    const events: StoreEvent<string>[] = []
    const sub = store.watch(['a/'], { after: revision(1) }).subscribe((e) => events.push(e))
    store.delete('a/2').subscribe()
    sub.unsubscribe()
    expect(events.map((e) => [e.type, e.revision])).toEqual([
      ['changes', 2n],
      ['changes', 4n],
      ['changes', 5n],
    ])
  })

  it('resumes at the current revision with nothing missed: no event until a write', () => {
    const store = createMemoryStore<string>({ initial: { 'a/1': '1' } })
    const events: StoreEvent<string>[] = []
    const sub = store.watch(['a/'], { after: store.revision() }).subscribe((e) => events.push(e))
    expect(events).toEqual([])
    store.put('a/1', '2').subscribe()
    sub.unsubscribe()
    expect(firstEvents(events, 1)[0]).toMatchObject({ type: 'changes', revision: 2n })
  })

  it('starts with a snapshot when the history is gone, or the revision is ahead', async () => {
    const store = createMemoryStore<string>({ initial: { 'a/1': '1' }, history: 2 })
    for (let i = 0; i < 4; i++) store.put('a/1', String(i)).subscribe()
    // Revisions 4 and 5 are held: after 3 resumes, after 2 cannot.
    const resumed = await firstValueFrom(store.watch(['a/'], { after: revision(3) }))
    expect(resumed).toMatchObject({ type: 'changes', revision: 4n })
    const relisted = await firstValueFrom(store.watch(['a/'], { after: revision(2) }))
    expect(relisted).toMatchObject({ type: 'snapshot', cause: 'startup', revision: 5n })
    const ahead = await firstValueFrom(store.watch(['a/'], { after: revision(99) }))
    expect(ahead).toMatchObject({ type: 'snapshot', cause: 'startup', revision: 5n })
  })

  it('keeps no history with history: 0, and refuses a bad history option', async () => {
    const store = createMemoryStore<string>({ initial: { 'a/1': '1' }, history: 0 })
    store.put('a/1', '2').subscribe()
    const first = await firstValueFrom(
      store.watch(['a/'], { after: revision(1) }).pipe(take(1), toArray()),
    )
    expect(first[0]?.type).toBe('snapshot')
    expect(() => createMemoryStore({ history: -1 })).toThrow(
      'memory: history: expected a whole number of revisions, at least 0, got -1',
    )
  })
})
