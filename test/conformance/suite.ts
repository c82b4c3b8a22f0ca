import {
  firstValueFrom,
  filter,
  lastValueFrom,
  take,
  timeout,
  toArray,
  type Observable,
} from 'rxjs'
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest'
import {
  CapabilityError,
  CodecError,
  createDatasync,
  type CommitResult,
  json,
  string,
  type Capabilities,
  type ChangeEvent,
  type ConsumerEvent,
  type Datasync,
  type DatasyncOptions,
  type KvStore,
  type StoreEvent,
} from '../../src/index.js'
import { recordConsumer, type ConsumerRecorder } from '../../src/testing/index.js'
import { Random, runSeed } from './random.js'
import { pollUntil } from '../servers/index.js'

/** What a backend's test file gives the suite for each test. */
export interface StoreFixture {
  /** The store under test. */
  readonly store: KvStore
  /**
   * Writes to the same data through another connection (default: `store`). For a read-only
   * backend this is how the test changes its data.
   */
  readonly writer?: KvStore
  /**
   * Cuts the store's connection (the writer stays connected) and, on `restore`, gives it back:
   * writes made in between must reach consumers through gap recovery (P4).
   */
  readonly fault?: {
    interrupt(): Promise<void>
    restore(): Promise<void>
  }
  /** How many watches the backend holds open now, where it can tell (P7). */
  readonly activeWatches?: () => number | Promise<number>
  close(): Promise<void>
}

/**
 * How the suite runs against a backend. What the store can do (write, transactions, TTL) is not
 * here: the suite reads it from `store.capabilities`, as users do, so a backend cannot claim one
 * thing to them and another to the suite. A test for a capability the store does not claim is
 * skipped at run time, with the reason in the report.
 */
export interface SuiteOptions {
  /** The fixture gives `fault` hooks: the gap-recovery tests (P4) run. @default false */
  readonly faults?: boolean
  /**
   * A transaction may name any keys. `false` for a Redis Cluster, where the keys of one
   * transaction must share a hash slot: a limit of the key layout that `capabilities.txn` cannot
   * express. The suite's transactions name keys anywhere, so instead of running them it checks
   * that the store refuses them with a `CapabilityError`. @default true
   */
  readonly txnAcrossKeys?: boolean
  /** Operations in the randomized convergence test. @default 150 */
  readonly randomOps?: number
  /** How long to wait for a consumer to converge. @default 20_000 */
  readonly convergeMs?: number
}

const text = string()
const enc = (value: string) => text.encode(value)
const dec = (raw: Uint8Array) => text.decode(raw)

let prefixCounter = 0
/** A fresh key prefix per test, so tests against one server never see each other's keys. */
function freshPrefix(): string {
  prefixCounter++
  return `conf-${process.pid}-${Date.now().toString(36)}-${prefixCounter}/`
}

/**
 * The promises P1-P8 of DESIGN.md as one suite, run against every backend. `makeFixture` is called
 * before each test with the key prefix the test works under (a combined store routes by it); its
 * `close` after it.
 */
export function describeStore(
  name: string,
  makeFixture: (prefix: string) => Promise<StoreFixture>,
  suiteOptions: SuiteOptions = {},
): void {
  const hasFaults = suiteOptions.faults ?? false
  const txnAcrossKeys = suiteOptions.txnAcrossKeys ?? true
  const convergeMs = suiteOptions.convergeMs ?? 20_000

  describe(`conformance: ${name}`, () => {
    let fixture: StoreFixture
    let store: KvStore
    let writer: KvStore
    let p: string
    const running: Datasync<Uint8Array>[] = []

    const put = (key: string, value: string) =>
      lastValueFrom(writer.put(p + key, enc(value)), { defaultValue: undefined })
    const del = (key: string, prefix = false) => lastValueFrom(writer.delete(p + key, { prefix }))
    const listed = async (prefix = '') =>
      (await lastValueFrom(store.list(p + prefix))).map((item) => ({
        ...item,
        value: dec(item.value),
      }))

    const sync = (options: DatasyncOptions = {}) => {
      const instance = createDatasync(store, { ackTimeout: '10s', ...options })
      running.push(instance)
      return instance
    }
    const inSync = (instance: Datasync<Uint8Array>) =>
      firstValueFrom(instance.status$.pipe(filter((status) => status.state === 'in-sync')))
    /** Whether the store under test claims `capability`. */
    const claims = (capability: keyof Capabilities) => store.capabilities[capability]
    /** The suite's transactions (keys anywhere) run on this store. */
    const runsTxn = () => claims('txn') && txnAcrossKeys
    /** Skips the running test unless the store claims `capability`. */
    const needs = (context: TestContext, capability: keyof Capabilities) => {
      context.skip(!claims(capability), `${name} does not claim capabilities.${capability}`)
    }
    /** Skips the running test unless the suite's transactions run on the store. */
    const needsTxn = (context: TestContext) => {
      needs(context, 'txn')
      context.skip(!txnAcrossKeys, `${name} takes transactions over keys of one hash slot only`)
    }

    beforeEach(async () => {
      p = freshPrefix()
      fixture = await makeFixture(p)
      store = fixture.store
      writer = fixture.writer ?? fixture.store
    })

    afterEach(async () => {
      for (const instance of running.splice(0)) instance.close()
      await fixture.close()
    })

    describe('broker', () => {
      it('puts, gets, lists and deletes keys', async () => {
        await put('a', '1')
        await put('b/1', '2')
        await put('b/2', '3')
        const got = await lastValueFrom(store.get(p + 'a'))
        expect(got && dec(got.value)).toBe('1')
        expect(await lastValueFrom(store.get(p + 'missing'))).toBeUndefined()
        expect((await listed('b/')).map((item) => [item.key, item.value])).toEqual([
          [p + 'b/1', '2'],
          [p + 'b/2', '3'],
        ])
        expect(await lastValueFrom(store.listKeys(p))).toEqual([p + 'a', p + 'b/1', p + 'b/2'])
        expect(await del('a')).toEqual({ deleted: 1 })
        expect(await del('a')).toEqual({ deleted: 0 })
        expect(await del('b/', true)).toEqual({ deleted: 2 })
        expect(await listed()).toEqual([])
      })

      it('gives each write a later revision', async () => {
        await put('r', '1')
        const first = await lastValueFrom(store.get(p + 'r'))
        await put('r', '2')
        const second = await lastValueFrom(store.get(p + 'r'))
        expect(typeof first?.revision).toBe('bigint')
        expect(second!.revision > first!.revision).toBe(true)
      })

      it('a read-only store refuses writes with a CapabilityError', async (context) => {
        context.skip(claims('write'), `${name} claims capabilities.write`)
        const writes: Observable<unknown>[] = [
          store.put(p + 'ro', enc('x')),
          store.delete(p + 'ro'),
          store.txn([{ op: 'delete', key: p + 'ro' }]),
        ]
        for (const write of writes) {
          const error: unknown = await lastValueFrom(write).catch((caught: unknown) => caught)
          expect(error).toBeInstanceOf(CapabilityError)
          expect((error as CapabilityError).backend).toBe(store.name)
        }
      })

      it('runs a transaction atomically when its conditions hold', async (context) => {
        needsTxn(context)
        await put('x', 'old')
        const absent = await lastValueFrom(
          store.txn([{ op: 'put', key: p + 'y', value: enc('new') }], {
            conditions: [{ key: p + 'y', exists: false }],
          }),
        )
        expect(absent.succeeded).toBe(true)
        const again = await lastValueFrom(
          store.txn([{ op: 'put', key: p + 'y', value: enc('newer') }], {
            conditions: [{ key: p + 'y', exists: false }],
          }),
        )
        expect(again.succeeded).toBe(false)
        const cas = await lastValueFrom(
          store.txn(
            [
              { op: 'put', key: p + 'x', value: enc('swapped') },
              { op: 'delete', key: p + 'y' },
            ],
            { conditions: [{ key: p + 'x', value: enc('old') }] },
          ),
        )
        expect(cas.succeeded).toBe(true)
        const casStale = await lastValueFrom(
          store.txn([{ op: 'delete', key: p + 'x' }], {
            conditions: [{ key: p + 'x', value: enc('old') }],
          }),
        )
        expect(casStale.succeeded).toBe(false)
        expect((await listed()).map((item) => [item.key, item.value])).toEqual([
          [p + 'x', 'swapped'],
        ])
        const current = await lastValueFrom(store.get(p + 'x'))
        const byRevision = await lastValueFrom(
          store.txn([{ op: 'delete', key: p + 'x' }], {
            conditions: [{ key: p + 'x', revision: current!.revision }],
          }),
        )
        expect(byRevision.succeeded).toBe(true)
        expect(await listed()).toEqual([])
      })

      it('refuses a transaction over keys it cannot place together with a CapabilityError', async (context) => {
        needs(context, 'txn')
        context.skip(txnAcrossKeys, `${name} takes transactions over any keys`)
        // Four keys without a shared hash tag: they fall in one slot with odds of 1 in 16384³.
        const keys = ['t/a/1', 't/a/2', 't/b/1', 't/c/1'].map((key) => p + key)
        const error: unknown = await lastValueFrom(
          store.txn(keys.map((key) => ({ op: 'put' as const, key, value: enc('x') }))),
        ).catch((caught: unknown) => caught)
        expect(error).toBeInstanceOf(CapabilityError)
        expect((error as CapabilityError).backend).toBe(store.name)
        expect(await listed()).toEqual([])
      })
    })

    describe('P1 snapshot, then deltas, with no gap', () => {
      it('a watch starts with a snapshot, then every change once, in order', async () => {
        await put('k/1', 'a')
        const events: StoreEvent<Uint8Array>[] = []
        const watching = store.watch([p + 'k/']).subscribe((event) => events.push(event))
        try {
          const snapshotSeen = () => events.some((event) => event.type === 'snapshot')
          await waitFor(snapshotSeen, convergeMs, 'the first snapshot')
          expect(events[0]?.type).toBe('snapshot')
          for (let i = 2; i <= 6; i++) await put(`k/${i % 3}`, `v${i}`)
          await del('k/1')
          const expected = await listed('k/')
          const model = new Map<string, string>()
          const apply = () => {
            model.clear()
            for (const event of events) {
              if (event.type === 'snapshot') {
                model.clear()
                for (const item of event.items) model.set(item.key, dec(item.value))
              } else {
                for (const change of event.changes) {
                  if (change.op === 'put') model.set(change.key, dec(change.value))
                  else model.delete(change.key)
                }
              }
            }
            return model
          }
          await waitFor(
            () =>
              sameEntries(
                apply(),
                expected.map((item) => [item.key, item.value]),
              ),
            convergeMs,
            'the watch to reach the store state',
          )
          const revisions = events.flatMap((event) =>
            event.type === 'changes' ? [event.revision] : [],
          )
          expect(revisions).toEqual([...revisions].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)))
          expect(new Set(revisions).size).toBe(revisions.length)
        } finally {
          watching.unsubscribe()
        }
      })

      it('loses nothing written while the consumers resync', async () => {
        for (let i = 0; i < 20; i++) await put(`s/${i}`, `v${i}`)
        const instance = sync()
        const slow = recordConsumer(
          instance.register('slow', { prefixes: [p + 's/'], codec: text }),
          {
            ackDelay: (event) => (event.kind === 'resync' ? 50 : 0),
          },
        )
        instance.start()
        const writes = (async () => {
          for (let i = 0; i < 30; i++) await put(`s/${i % 25}`, `w${i}`)
        })()
        await writes
        await slow.untilEquals(await listed('s/'), convergeMs)
        expect(slow.violations).toEqual([])
        expect(slow.events[0]?.kind).toBe('resync')
      })
    })

    describe('P2 previous value on every change, per consumer', () => {
      it('gives puts and deletes the prev this consumer last saw; overlapping consumers keep their own', async () => {
        await put('a/1', 'one')
        const instance = sync()
        const wide = recordConsumer(instance.register('wide', { prefixes: [p], codec: text }))
        const narrow = recordConsumer(
          instance.register('narrow', { prefixes: [p + 'a/'], codec: text }),
        )
        instance.start()
        await inSync(instance)
        // Each write seen by both before the next: a store that polls (Consul) merges writes
        // that land within one round trip, and this test is about prev values, not merging.
        const seen = (key: string, value: string | undefined) =>
          Promise.all(
            [wide, narrow].map((recorder) =>
              recorder.until((state) => state.get(p + key) === value, convergeMs),
            ),
          )
        await put('a/1', 'two')
        await seen('a/1', 'two')
        await put('a/2', 'new')
        await seen('a/2', 'new')
        await del('a/1')
        await seen('a/1', undefined)
        await put('b/1', 'b')
        await wide.untilEquals(await listed(), convergeMs)
        await narrow.untilEquals(await listed('a/'), convergeMs)
        const changes = (recorder: ConsumerRecorder<string>) =>
          recorder.events
            .filter((event): event is ChangeEvent<string> => event.kind === 'change')
            .flatMap((event) =>
              event.changes.map((c) => `${c.op} ${c.key.slice(p.length)} ${c.prev ?? '-'}`),
            )
        expect(changes(narrow)).toEqual(['put a/1 one', 'put a/2 -', 'delete a/1 two'])
        expect(changes(wide)).toEqual(['put a/1 one', 'put a/2 -', 'delete a/1 two', 'put b/1 -'])
        expect(wide.violations).toEqual([])
        expect(narrow.violations).toEqual([])
      })
    })

    describe('P3 ordered, acknowledged resync', () => {
      it('resyncs consumers in registration order, each after the previous ack, and gates deltas', async () => {
        await put('a/1', '1')
        await put('b/1', '1')
        await put('c/1', '1')
        const log: string[] = []
        const instance = sync()
        const consumers = ['c', 'a', 'b'].map((id) =>
          instance.register(id, { prefixes: [p + id + '/'], codec: text }),
        )
        const recorders = consumers.map((consumer) =>
          recordConsumer(consumer, {
            ackDelay: (event) => (event.kind === 'resync' ? undefined : 0),
          }),
        )
        let wrote: Promise<unknown> = Promise.resolve()
        for (const consumer of consumers) {
          consumer.events$.subscribe((event) => {
            log.push(`${consumer.name}:${event.kind}`)
            if (event.kind !== 'resync') return
            // A write during the round (after the snapshot was taken): nobody may see it before
            // every resync is acknowledged.
            if (consumer.name === 'c') wrote = put('a/1', '2')
            // Acknowledge a little later, and log it: the next resync must come after this.
            setTimeout(() => {
              log.push(`${consumer.name}:ack`)
              event.done()
            }, 20)
          })
        }
        instance.start()
        await inSync(instance)
        await wrote
        await recorders[1]!.until((state) => state.get(p + 'a/1') === '2', convergeMs)
        expect(log.slice(0, 6)).toEqual([
          'c:resync',
          'c:ack',
          'a:resync',
          'a:ack',
          'b:resync',
          'b:ack',
        ])
        expect(log.slice(6)).toEqual(['a:change'])
        for (const recorder of recorders) expect(recorder.violations).toEqual([])
      })
    })

    describe('P4 gaps heal themselves', () => {
      it.runIf(hasFaults)(
        'after an interrupted connection, consumers get the differences; deletes carry the last value',
        async () => {
          const fault = requireFault(fixture)
          await put('g/keep', 'k')
          await put('g/change', 'c1')
          await put('g/drop', 'd')
          const instance = sync()
          const recorder = recordConsumer(
            instance.register('g', { prefixes: [p + 'g/'], codec: text }),
          )
          instance.start()
          await inSync(instance)
          await fault.interrupt()
          await put('g/change', 'c2')
          await del('g/drop')
          await put('g/new', 'n')
          await fault.restore()
          await recorder.untilEquals(await listed('g/'), convergeMs)
          expect(recorder.violations).toEqual([])
          const all = recorder.events.flatMap((event) =>
            event.kind === 'change' ? event.changes : [],
          )
          const dropped = all.find((change) => change.key === p + 'g/drop')
          expect(dropped).toMatchObject({ op: 'delete', prev: 'd' })
          expect(all.find((change) => change.key === p + 'g/change')).toMatchObject({
            op: 'put',
            prev: 'c1',
            value: 'c2',
          })
          expect(all.some((change) => change.key === p + 'g/keep')).toBe(false)
        },
      )

      it.runIf(hasFaults)(
        'with resyncAfterReconnect, consumers get a full resync instead',
        async () => {
          const fault = requireFault(fixture)
          await put('h/1', '1')
          const instance = sync({ resyncAfterReconnect: true })
          const recorder = recordConsumer(
            instance.register('h', { prefixes: [p + 'h/'], codec: text }),
          )
          instance.start()
          await inSync(instance)
          await fault.interrupt()
          // A reconnect needs a disconnection the store noticed: its status says so.
          await firstValueFrom(
            store.status$.pipe(
              filter((status) => status.state === 'degraded'),
              timeout(convergeMs),
            ),
          )
          await put('h/2', '2')
          await fault.restore()
          const resyncs = () => recorder.events.filter((event) => event.kind === 'resync')
          await recorder.until(() => resyncs().length >= 2, convergeMs)
          await recorder.untilEquals(await listed('h/'), convergeMs)
          expect(resyncs().at(-1)?.reason).toBe('reconnect')
          expect(recorder.violations).toEqual([])
        },
      )
    })

    describe('P5 nothing is dropped silently', () => {
      it('a slow consumer gets every key, coalesced per key, with its lag observable', async () => {
        const instance = sync()
        const slow = instance.register('slow', { prefixes: [p + 'q/'], codec: text })
        let lag = 0
        slow.lag$.subscribe((value) => (lag = value))
        // The slow consumer holds its first change event until the test lets it go.
        let holding = true
        const recorder = recordConsumer(slow, {
          ackDelay: (event) => (event.kind === 'change' && holding ? undefined : 0),
        })
        const fast = recordConsumer(
          instance.register('fast', { prefixes: [p + 'q/'], codec: text }),
        )
        instance.start()
        await inSync(instance)
        // q/5 last: one store's writes arrive in the order it made them, on a Cluster too.
        const wave = async (n: number) => {
          for (let i = 0; i < 6; i++) await put(`q/${i}`, `w${n}-${i}`)
          await fast.until((state) => state.get(p + 'q/5') === `w${n}-5`, convergeMs)
        }
        await wave(1)
        await recorder.until(
          () => recorder.events.some((event) => event.kind === 'change'),
          convergeMs,
        )
        await wave(2)
        await wave(3)
        // Everything after the held event waits, one entry per key.
        expect(lag).toBeGreaterThan(0)
        expect(lag).toBeLessThanOrEqual(6)
        holding = false
        for (const event of recorder.events) if (event.kind === 'change') event.done()
        await recorder.untilEquals(await listed('q/'), convergeMs)
        expect(lag).toBe(0)
        // The held event, then everything else coalesced into one event: every key once. (On a
        // loaded machine a store may see a gap, e.g. a late heartbeat, while the event is held:
        // the repair, a diff with reason 'reconnect' or 'gap', then comes too, also each key once.)
        const changeEvents = recorder.events.filter(
          (event): event is ChangeEvent<string> => event.kind === 'change',
        )
        const repaired = changeEvents.some((event) => event.reason !== 'live')
        if (!repaired) expect(changeEvents).toHaveLength(2)
        expect(changeEvents[0]?.reason).toBe('live')
        for (const event of changeEvents.slice(1)) {
          const keys = event.changes.map((change) => change.key)
          expect(new Set(keys).size).toBe(keys.length)
        }
        expect(changeEvents.filter((event) => event.reason === 'live').length).toBeLessThanOrEqual(
          2,
        )
        expect(recorder.violations).toEqual([])
        expect(fast.violations).toEqual([])
      })
    })

    describe('P6 errors do not kill the stream', () => {
      it('an undecodable value is reported with its key; the consumer keeps the last good value', async () => {
        await put('j/1', '{"n":1}')
        const instance = sync()
        const errors: CodecError[] = []
        instance.errors$.subscribe((error) => {
          if (error instanceof CodecError) errors.push(error)
        })
        const recorder = recordConsumer(
          instance.register('j', { prefixes: [p + 'j/'], codec: json<{ n: number }>() }),
        )
        instance.start()
        await inSync(instance)
        await put('j/1', 'not json {')
        await put('j/2', '{"n":2}')
        await recorder.until((state) => state.has(p + 'j/2'), convergeMs)
        expect(recorder.state.get(p + 'j/1')).toEqual({ n: 1 })
        expect(errors.map((error) => error.key)).toEqual([p + 'j/1'])
        expect(errors[0]?.message).toContain(p + 'j/1')
        expect(recorder.violations).toEqual([])
      })

      it('a consumer that fails its ack under the default policy is reported and the others go on', async () => {
        await put('f/1', '1')
        const instance = sync()
        const codes: string[] = []
        instance.errors$.subscribe((error) => codes.push(error.code))
        recordConsumer(instance.register('failing', { prefixes: [p + 'f/'], codec: text }), {
          fail: () => new Error('cannot apply'),
        })
        const other = recordConsumer(
          instance.register('other', { prefixes: [p + 'f/'], codec: text }),
        )
        instance.start()
        await inSync(instance)
        await put('f/1', '2')
        await other.until((state) => state.get(p + 'f/1') === '2', convergeMs)
        expect(codes).toContain('consumer-failed')
      })
    })

    describe('P7 cold and lazy', () => {
      it('a watch does nothing until subscribed, and unsubscribing releases it', async () => {
        const before = fixture.activeWatches ? await fixture.activeWatches() : 0
        const watch = store.watch([p + 'z/'])
        if (fixture.activeWatches) expect(await fixture.activeWatches()).toBe(before)
        const first = await firstValueFrom(watch.pipe(take(1)))
        expect(first.type).toBe('snapshot')
        if (fixture.activeWatches) {
          const activeWatches = fixture.activeWatches
          await waitFor(
            async () => (await activeWatches()) === before,
            convergeMs,
            'the watch to be released',
          )
        }
      })

      it('a stopped orchestrator delivers nothing; started again it brings what changed', async () => {
        await put('s/1', '1')
        const instance = sync()
        const recorder = recordConsumer(
          instance.register('s', { prefixes: [p + 's/'], codec: text }),
        )
        instance.start()
        await inSync(instance)
        instance.stop()
        const eventsWhileStopped = recorder.events.length
        await put('s/1', '2')
        await put('s/2', 'new')
        expect(recorder.events.length).toBe(eventsWhileStopped)
        instance.start()
        await recorder.untilEquals(await listed('s/'), convergeMs)
        const after = recorder.events.slice(eventsWhileStopped)
        expect(after.map((event) => `${event.kind}:${event.reason}`)).toEqual(['change:reconnect'])
        expect(recorder.violations).toEqual([])
      })
    })

    describe('P8 atomic batches', () => {
      it('a transaction arrives as one change event per consumer', async (context) => {
        needsTxn(context)
        await put('t/a/1', '1')
        const instance = sync()
        const a = recordConsumer(instance.register('a', { prefixes: [p + 't/a/'], codec: text }))
        const b = recordConsumer(instance.register('b', { prefixes: [p + 't/b/'], codec: text }))
        instance.start()
        await inSync(instance)
        await lastValueFrom(
          writer.txn([
            { op: 'put', key: p + 't/a/1', value: enc('2') },
            { op: 'put', key: p + 't/a/2', value: enc('2') },
            { op: 'put', key: p + 't/b/1', value: enc('b') },
          ]),
        )
        await a.untilEquals(await listed('t/a/'), convergeMs)
        await b.untilEquals(await listed('t/b/'), convergeMs)
        const changeEvents = (recorder: ConsumerRecorder<string>) =>
          recorder.events.filter((event): event is ChangeEvent<string> => event.kind === 'change')
        expect(changeEvents(a).map((event) => event.changes.length)).toEqual([2])
        expect(changeEvents(b).map((event) => event.changes.length)).toEqual([1])
      })
    })

    describe('write and wait', () => {
      it('commit resolves only after the slowest covering consumer applied the write, with each done(error)', async (context) => {
        needs(context, 'write')
        await put('w/1', 'old')
        const instance = sync()
        const fast = recordConsumer(
          instance.register('fast', { prefixes: [p + 'w/'], codec: text }),
        )
        const slow = instance.register('slow', { prefixes: [p + 'w/'], codec: text })
        let held: ChangeEvent<string> | undefined
        slow.events$.subscribe((event) => {
          if (event.kind === 'change') held = event
          else event.done()
        })
        recordConsumer(instance.register('failing', { prefixes: [p + 'w/'], codec: text }), {
          fail: (event) => (event.kind === 'change' ? new Error('cannot apply') : undefined),
        })
        // Covers none of the written keys: never waited for (it would time the commit out).
        instance
          .register('elsewhere', { prefixes: [p + 'u/'], codec: text })
          .events$.subscribe((event) => {
            if (event.kind === 'resync') event.done()
          })
        instance.start()
        await inSync(instance)
        let result: CommitResult | undefined
        const committed = lastValueFrom(
          instance.commit([{ op: 'put', key: p + 'w/1', value: enc('new') }], { timeout: '60s' }),
        ).then((value) => (result = value))
        await fast.until((state) => state.get(p + 'w/1') === 'new', convergeMs)
        await waitFor(() => held !== undefined, convergeMs, 'the slow consumer to get the write')
        expect(result).toBeUndefined()
        held?.done()
        await committed
        expect(result?.succeeded).toBe(true)
        expect(result?.consumers.map((outcome) => outcome.consumer)).toEqual([
          'fast',
          'slow',
          'failing',
        ])
        expect(result?.consumers.map((outcome) => outcome.error?.code)).toEqual([
          undefined,
          undefined,
          'consumer-failed',
        ])
        expect(result?.consumers[2]?.error?.message).toMatch(/cannot apply/)
        // A write that changes nothing for them is applied at once.
        const again = await lastValueFrom(
          instance.commit([{ op: 'delete', key: p + 'w/never-written' }]),
        )
        expect(again.consumers.map((outcome) => outcome.error)).toEqual([
          undefined,
          undefined,
          undefined,
        ])
      })
    })

    describe('TTL', () => {
      it('a key with a TTL expires and consumers see a delete carrying its last value', async (context) => {
        needs(context, 'ttl')
        const instance = sync()
        const recorder = recordConsumer(
          instance.register('ttl', { prefixes: [p + 'ttl/'], codec: text }),
        )
        instance.start()
        await inSync(instance)
        await lastValueFrom(writer.put(p + 'ttl/1', enc('short'), { ttl: '1s' }), {
          defaultValue: undefined,
        })
        await recorder.until((state) => state.get(p + 'ttl/1') === 'short', convergeMs)
        await recorder.until((state) => !state.has(p + 'ttl/1'), convergeMs)
        const last = recorder.events.at(-1) as ChangeEvent<string>
        expect(last.changes).toEqual([
          expect.objectContaining({ op: 'delete', key: p + 'ttl/1', prev: 'short' }),
        ])
        expect(recorder.violations).toEqual([])
      })
    })

    describe('randomized convergence', () => {
      it('random writes, gaps and slow consumers end with every consumer holding the store state', async () => {
        const seed = runSeed()
        const random = new Random(seed)
        console.log(
          `[conformance] ${name}: randomized convergence seed=${seed} (replay with CONFORMANCE_SEED=${seed})`,
        )
        const ops = suiteOptions.randomOps ?? 150
        const keys = Array.from({ length: 12 }, (_, i) => `${i % 3 === 0 ? 'x' : 'y'}/${i}`)
        const instance = sync({ maxInFlight: 1 + random.int(2) })
        const specs = [
          { id: 'all', prefixes: [p], delay: () => 0 },
          { id: 'x', prefixes: [p + 'x/'], delay: () => random.int(6) },
          {
            id: 'xy',
            prefixes: [p + 'x/', p + 'y/'],
            delay: () => (random.chance(0.2) ? 20 : random.int(3)),
          },
        ]
        const recorders = specs.map((spec) =>
          recordConsumer(instance.register(spec.id, { prefixes: spec.prefixes, codec: text }), {
            ackDelay: spec.delay,
          }),
        )
        instance.start()
        let interrupted = false
        try {
          for (let i = 0; i < ops; i++) {
            const roll = random.next()
            if (roll < 0.55) await put(random.pick(keys), `v${i}`)
            else if (roll < 0.75) await del(random.pick(keys))
            else if (roll < 0.85 && runsTxn()) {
              const n = 1 + random.int(4)
              const chosen = [...new Set(Array.from({ length: n }, () => random.pick(keys)))]
              await lastValueFrom(
                writer.txn(
                  chosen.map((key) =>
                    random.chance(0.7)
                      ? { op: 'put' as const, key: p + key, value: enc(`t${i}`) }
                      : { op: 'delete' as const, key: p + key },
                  ),
                ),
              )
            } else if (roll < 0.9) await del(random.pick(['x/', 'y/']), true)
            else if (fixture.fault && !interrupted && random.chance(0.6)) {
              await fixture.fault.interrupt()
              interrupted = true
            } else if (fixture.fault && interrupted) {
              await fixture.fault.restore()
              interrupted = false
            }
          }
          if (interrupted && fixture.fault) await fixture.fault.restore()
          for (const [index, spec] of specs.entries()) {
            const expected = (
              await Promise.all(spec.prefixes.map((prefix) => listed(prefix.slice(p.length))))
            ).flat()
            await recorders[index]!.untilEquals(expected, convergeMs)
            expect(recorders[index]!.violations, `seed=${seed} consumer=${spec.id}`).toEqual([])
          }
        } catch (error) {
          throw new Error(
            `seed=${seed}: ${error instanceof Error ? error.message : String(error)}`,
            { cause: error },
          )
        }
      })
    })
  })
}

/** The fixture's fault hooks; a suite declared with `faults: true` must give them. */
function requireFault(fixture: StoreFixture): NonNullable<StoreFixture['fault']> {
  if (!fixture.fault)
    throw new Error('the suite was declared with faults: true but the fixture has no fault hooks')
  return fixture.fault
}

/** Waits until `check` holds, polled by the harness every 10 ms, up to `within` ms. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  within: number,
  what: string,
): Promise<void> {
  await pollUntil(async () => (await check()) || undefined, {
    timeoutMs: within,
    intervalMs: 10,
    maxIntervalMs: 10,
    description: what,
  })
}

function sameEntries(
  actual: ReadonlyMap<string, string>,
  expected: readonly (readonly [string, string])[],
): boolean {
  return (
    actual.size === expected.length && expected.every(([key, value]) => actual.get(key) === value)
  )
}

/** Every change of the given events, for assertions. */
export function allChanges<T>(events: readonly ConsumerEvent<T>[]) {
  return events.flatMap((event) => (event.kind === 'change' ? event.changes : []))
}

export { toArray }
