import { ReplaySubject, filter, firstValueFrom, timeout } from 'rxjs'
import { SnapshotPersistError, createDatasync, string, type KvStore } from '../../src/index.js'
import { fileSnapshotPersistence } from '../../src/snapshot-file/index.js'
import { describeEvent } from '../../src/testing/index.js'

/** What an orchestrator run tells: consumers' events (labels), errors, saves. */
export type RunMessage =
  | { readonly type: 'event'; readonly consumer: string; readonly label: string }
  | { readonly type: 'error'; readonly error: Error }
  | { readonly type: 'persisted'; readonly revision: bigint }

/** An orchestrator over `store` that keeps its snapshot in `file`, with consumers that ack. */
export interface PersistRun {
  readonly messages: readonly RunMessage[]
  /** The first message `test` accepts, waiting up to 20 s for it. */
  waitFor(what: string, test: (message: RunMessage) => boolean): Promise<RunMessage>
  /** Waits for a save at `revision` or later. */
  saved(revision: bigint): Promise<RunMessage>
  /** Every label one consumer saw, in order. */
  labels(consumer: string): string[]
  /** Every error on `errors$`. */
  errors(): Error[]
  /** Stops and closes the orchestrator (not the store). */
  close(): void
}

/** Starts an orchestrator over `store` with `persist` to `file` and one consumer per entry. */
export function persistRun(
  store: KvStore,
  file: string,
  consumers: Readonly<Record<string, readonly string[]>>,
): PersistRun {
  const messages: RunMessage[] = []
  const all$ = new ReplaySubject<RunMessage>()
  const tell = (message: RunMessage) => {
    messages.push(message)
    all$.next(message)
  }
  const sync = createDatasync(store, {
    persist: { to: fileSnapshotPersistence(file), every: '20ms' },
  })
  for (const [name, prefixes] of Object.entries(consumers)) {
    sync.register(name, { prefixes, codec: string() }).events$.subscribe((event) => {
      tell({ type: 'event', consumer: name, label: describeEvent(event) })
      event.done()
    })
  }
  sync.errors$.subscribe((error) => {
    tell({ type: 'error', error })
  })
  sync.activity$.subscribe((step) => {
    if (step.type === 'persisted') tell({ type: 'persisted', revision: step.revision })
  })
  sync.start()
  const waitFor = (what: string, test: (message: RunMessage) => boolean) =>
    firstValueFrom(
      all$.pipe(
        filter(test),
        timeout({
          first: 20_000,
          with: () => {
            throw new Error(`timed out waiting for ${what}; the run said: ${show(messages)}`)
          },
        }),
      ),
    )
  return {
    messages,
    waitFor,
    saved: (revision) =>
      waitFor(`a save at ${revision}`, (m) => m.type === 'persisted' && m.revision >= revision),
    labels: (consumer) =>
      messages.flatMap((m) => (m.type === 'event' && m.consumer === consumer ? [m.label] : [])),
    errors: () => messages.flatMap((m) => (m.type === 'error' ? [m.error] : [])),
    close: () => {
      sync.close()
      all$.complete()
    },
  }
}

/** Whether `message` is the `identity` SnapshotPersistError. */
export function isIdentityError(message: RunMessage): boolean {
  return (
    message.type === 'error' &&
    message.error instanceof SnapshotPersistError &&
    message.error.problem === 'identity'
  )
}

function show(messages: readonly RunMessage[]): string {
  return JSON.stringify(messages, (_key, value: unknown) =>
    typeof value === 'bigint'
      ? value.toString()
      : value instanceof Error
        ? `${value.name}: ${value.message}`
        : value,
  )
}

/** A store's identity: its one answer. */
export function identityOf(store: KvStore): Promise<string> {
  if (store.identity === undefined) {
    return Promise.reject(new Error(`the ${store.name} store has no identity()`))
  }
  return firstValueFrom(store.identity())
}

/**
 * Asks `store` its identity while its server cannot answer: resolves with the failure and how
 * long it took (ms), printing both; an answer is returned as an Error saying so.
 */
export async function identityFailure(store: KvStore): Promise<{ error: unknown; ms: number }> {
  const started = performance.now()
  const error = await identityOf(store).then(
    () => new Error('it answered'),
    (raised: unknown) => raised,
  )
  const ms = performance.now() - started
  console.log(`identity while down: ${(error as Error).message} in ${Math.round(ms)} ms`)
  return { error, ms }
}
