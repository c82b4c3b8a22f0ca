/**
 * What the two installers of the harness share: `install.ts` (Debian packages with apt-get) and
 * `consul-install.ts` (Consul built with Go). The log prefix, an executable-file check, running a
 * command with its output collected, and the cross-process lock file that keeps parallel vitest
 * workers and separate test processes from installing the same thing at once.
 */
import { spawn } from 'node:child_process'
import { constants as fsConstants, accessSync, statSync } from 'node:fs'
import fs from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'

/** The prefix of every message the harness writes to stderr or puts in an Error. */
export const LOG_PREFIX = '[rx-datasync test servers]'

/** Whether `file` is a regular file this process may execute. */
export function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK)
    return statSync(file).isFile()
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------------
// Running a command

/** How a command ended, with its stdout and stderr interleaved as they came. */
export interface CommandResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly output: string
}

/** Where and how long a command runs. */
export interface CommandOptions {
  readonly env: NodeJS.ProcessEnv
  /** The working directory; this process's own when left out. */
  readonly cwd?: string
  /** SIGKILL the command after this long (it then resolves with `signal: 'SIGKILL'`); no limit when left out. */
  readonly timeoutMs?: number
}

/**
 * Runs `command` with stdin closed and resolves with its exit code or signal and its output,
 * whatever the exit code. Rejects only when it cannot be started (e.g. ENOENT).
 */
export function runCommand(
  command: string,
  args: readonly string[],
  options: CommandOptions,
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const chunks: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk))
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            child.kill('SIGKILL')
          }, options.timeoutMs)
    child.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, output: Buffer.concat(chunks).toString('utf8') })
    })
  })
}

/** The last `lines` lines of `text` (for the output of a failed command in an Error). */
export function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

// ---------------------------------------------------------------------------------------------
// A lock file across processes: created with O_EXCL, holding the owner's pid.

/** A lock file and how to wait for it. */
export interface FileLockOptions {
  /** The lock file. Its directory must exist. */
  readonly path: string
  /** How long to wait for another holder before giving up with an Error. */
  readonly timeoutMs: number
  /** A lock file older than this is stale, whether or not its owner lives. */
  readonly staleAfterMs: number
  /**
   * A lock file with no pid in it (its owner has created it and not yet written its pid) older
   * than this is stale. When left out, such a file is never stale before `staleAfterMs`.
   */
  readonly emptyStaleAfterMs?: number
  /** The first pause between attempts; it doubles up to `maxPollMs`. */
  readonly initialPollMs: number
  /** The longest pause between attempts. */
  readonly maxPollMs: number
  /** Written to stderr (after {@link LOG_PREFIX}) once, when this process starts to wait. */
  readonly waitingMessage: string
  /** The message (after {@link LOG_PREFIX}) of the Error when `timeoutMs` has passed. */
  readonly timeoutMessage: string
}

/** Per lock file: the end of this process's queue of holders. */
const inProcessQueues = new Map<string, Promise<unknown>>()

/**
 * Runs `fn` while holding the lock file `options.path`: in this process (callers queue up, one
 * after the other) and across processes (the file is created with O_EXCL and holds this process's
 * pid; it is removed when `fn` settles). A lock file whose owner is gone, or that is older than
 * `staleAfterMs`, is stale and taken over. Says once on stderr that it waits for another process.
 */
export function withFileLock<T>(options: FileLockOptions, fn: () => Promise<T>): Promise<T> {
  const queue = inProcessQueues.get(options.path) ?? Promise.resolve()
  const run = queue.then(async () => {
    await acquireFileLock(options)
    try {
      return await fn()
    } finally {
      await fs.rm(options.path, { force: true })
    }
  })
  inProcessQueues.set(
    options.path,
    run.catch(() => undefined),
  )
  return run
}

/** Whether process `pid` exists (EPERM: it does, owned by someone else). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function lockIsStale(options: FileLockOptions): Promise<boolean> {
  try {
    const [content, stat] = await Promise.all([
      fs.readFile(options.path, 'utf8'),
      fs.stat(options.path),
    ])
    const age = Date.now() - stat.mtimeMs
    if (age > options.staleAfterMs) return true
    const pid = Number.parseInt(content.trim(), 10)
    // An empty file is a lock being written right now.
    if (!Number.isInteger(pid) || pid <= 0) return age > (options.emptyStaleAfterMs ?? Infinity)
    return !pidAlive(pid)
  } catch (err) {
    // Vanished between attempts: not stale, just retry.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

async function acquireFileLock(options: FileLockOptions): Promise<void> {
  const deadline = performance.now() + options.timeoutMs
  let interval = options.initialPollMs
  let announced = false
  for (;;) {
    try {
      const handle = await fs.open(options.path, 'wx')
      try {
        await handle.writeFile(`${process.pid}\n`)
      } finally {
        await handle.close()
      }
      return
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    if (await lockIsStale(options)) {
      await fs.rm(options.path, { force: true })
      continue
    }
    if (performance.now() > deadline) {
      throw new Error(`${LOG_PREFIX} ${options.timeoutMessage}`)
    }
    if (!announced) {
      process.stderr.write(`${LOG_PREFIX} ${options.waitingMessage}\n`)
      announced = true
    }
    await sleep(interval)
    interval = Math.min(interval * 2, options.maxPollMs)
  }
}
