// Helpers shared by the unit tests. Each test file keeps what is its own; what several files
// repeated word for word lives here.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Observable, Subscription, VirtualTimeScheduler } from 'rxjs'
import { afterAll, beforeAll, expect } from 'vitest'
import { ConfigError } from '../../src/index.js'
import type { Codec } from '../../src/core/codec.js'
import { revision, type Revision } from '../../src/core/revision.js'

// --- Stores and observables ---

/**
 * A string codec that records each decode and upper-cases (so a decoded value shows); the raw
 * value 'bad' fails to decode.
 */
export function upperCodec(name = 'upper'): Codec<string, string> & { readonly decoded: string[] } {
  const decoded: string[] = []
  return {
    name,
    decoded,
    encode: (value) => value,
    decode: (raw) => {
      decoded.push(raw)
      if (raw === 'bad') throw new Error('not a value')
      return raw.toUpperCase()
    },
  }
}

/** Shorthand for `revision(n)`, so expected events read `r(3)`. */
export const r = (n: number): Revision => revision(n)

/** Subscribes and returns the value the (synchronous) operation emitted; throws its error. */
export function run<T>(source: Observable<T>): T {
  let result: { value: T } | undefined
  let failure: { error: unknown } | undefined
  source.subscribe({
    next: (value) => {
      result = { value }
    },
    error: (error: unknown) => {
      failure = { error }
    },
  })
  if (failure) throw failure.error
  if (!result) throw new Error('the operation did not emit synchronously')
  return result.value
}

/** Subscribes and returns the error the (synchronous) operation failed with. */
export function failure(source: Observable<unknown>): unknown {
  let caught: unknown
  let failed = false
  source.subscribe({
    error: (error: unknown) => {
      failed = true
      caught = error
    },
  })
  if (!failed) throw new Error('the operation did not fail')
  return caught
}

/** What {@link record} has seen of a source so far. */
export interface Recorder<T> {
  /** Every value emitted, in order. */
  readonly values: T[]
  /** The recording subscription; unsubscribe to stop recording. */
  readonly subscription: Subscription
  /** Whether the source has completed. */
  readonly completed: () => boolean
}

/**
 * Subscribes and records the values a source emits and whether it completed. An error is not
 * caught: it is reported as unhandled, so a test fails if a recorded source errors.
 */
export function record<T>(source: Observable<T>): Recorder<T> {
  const values: T[] = []
  let completed = false
  const subscription = source.subscribe({
    next: (value) => values.push(value),
    complete: () => {
      completed = true
    },
  })
  return { values, subscription, completed: () => completed }
}

/** Runs every action of a virtual scheduler due at or before `time`. */
export function advanceTo(scheduler: VirtualTimeScheduler, time: number): void {
  scheduler.maxFrames = time
  scheduler.flush()
  scheduler.frame = time
}

// --- Configuration ---

/** A temporary directory that exists while the suite that called {@link useTempDir} runs. */
export interface TempDir {
  /** The directory's path; set once the suite's `beforeAll` has run. */
  readonly path: string
  /** Writes `text` to the file `name` in the directory and returns the file's path. */
  readonly file: (name: string, text: string) => Promise<string>
}

/**
 * Creates a temporary directory, named from `prefix`, before the current suite's tests and
 * removes it after them. Call it at the top level of a file or of a `describe` block.
 */
export function useTempDir(prefix: string): TempDir {
  let path = ''
  beforeAll(async () => {
    path = await mkdtemp(join(tmpdir(), prefix))
  })
  afterAll(async () => {
    await rm(path, { recursive: true, force: true })
  })
  return {
    get path() {
      return path
    },
    file: async (name, text) => {
      const file = join(path, name)
      await writeFile(file, text)
      return file
    },
  }
}

/** Runs `run` and returns the ConfigError it throws; fails if it throws nothing or another error. */
export function configError(run: () => unknown): ConfigError {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return error as ConfigError
  }
  throw new Error('expected a ConfigError, nothing was thrown')
}

/** Awaits `promise` and returns the ConfigError it rejects with; fails if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<ConfigError> {
  const error: unknown = await promise.then(
    () => {
      throw new Error('expected a ConfigError, the promise resolved')
    },
    (reason: unknown) => reason,
  )
  expect(error).toBeInstanceOf(ConfigError)
  return error as ConfigError
}
