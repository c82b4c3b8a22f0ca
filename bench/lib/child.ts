/** Child processes of the benchmarks (the writer, the memory probes), run through tsx like the parent. */
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** A running child with a message channel. */
export interface Child {
  readonly process: ChildProcess
  /** The next message of the given `type` (rejects when the child exits first). */
  next<T extends { type: string }>(type: T['type']): Promise<T>
  send(message: unknown): void
  /** Resolves when the child exited with 0; rejects otherwise. */
  readonly exited: Promise<void>
}

/** Starts `bench/children/<name>.ts` with `input` as its first argument (JSON). */
export function startChild(
  name: string,
  input: unknown,
  options: { exposeGc?: boolean; execArgv?: readonly string[] } = {},
): Child {
  const script = fileURLToPath(new URL(`../children/${name}.ts`, import.meta.url))
  const child = fork(script, [JSON.stringify(input)], {
    execArgv: [
      '--conditions=source',
      '--import',
      'tsx',
      ...(options.exposeGc === true ? ['--expose-gc'] : []),
      ...(options.execArgv ?? []),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const queued: { type: string }[] = []
  const waiting: { type: string; resolve: (m: never) => void; reject: (e: Error) => void }[] = []
  let gone: Error | undefined
  child.on('message', (message: { type: string }) => {
    const at = waiting.findIndex((w) => w.type === message.type)
    if (at >= 0) waiting.splice(at, 1)[0]!.resolve(message as never)
    else queued.push(message)
  })
  const exited = new Promise<void>((resolve, reject) => {
    child.on('exit', (code, signal) => {
      gone = new Error(`child ${name} exited (code ${code}, signal ${signal}) before answering`)
      for (const w of waiting.splice(0)) w.reject(gone)
      if (code === 0) resolve()
      else reject(new Error(`child ${name} failed (code ${code}, signal ${signal})`))
    })
  })
  exited.catch(() => undefined)
  return {
    process: child,
    exited,
    send: (message) => child.send(message as object),
    next<T extends { type: string }>(type: T['type']) {
      const at = queued.findIndex((m) => m.type === type)
      if (at >= 0) return Promise.resolve(queued.splice(at, 1)[0] as T)
      if (gone) return Promise.reject(gone)
      return new Promise<T>((resolve, reject) => {
        waiting.push({ type, resolve, reject })
      })
    },
  }
}

/** Sends a message to the parent (children only). */
export function tell(message: { type: string } & Record<string, unknown>): void {
  process.send?.(message)
}

/** The next message of `type` from the parent (children only). */
export function hear<T extends { type: string }>(type: T['type']): Promise<T> {
  return new Promise((resolve) => {
    const listener = (message: { type: string }) => {
      if (message.type !== type) return
      process.off('message', listener)
      resolve(message as T)
    }
    process.on('message', listener)
  })
}
