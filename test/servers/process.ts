/**
 * A real server process for tests: spawned in a fresh temporary data directory, its output
 * captured to a log file there (and the last lines in memory for error messages), ready once an
 * async probe succeeds, and controllable with signals (stop, kill -9, SIGSTOP/SIGCONT, restart).
 *
 * Every live process is SIGKILLed when the test process exits, and its data directory removed
 * (set RX_DATASYNC_KEEP_SERVER_DIRS=1 to keep the directories for a post-mortem).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, readFileSync, rmSync, type WriteStream } from 'node:fs'
import fs from 'node:fs/promises'
import type { Socket } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { ensureBinary } from './install.js'
import { pollUntil } from './wait.js'

const DEFAULT_READY_TIMEOUT_MS = 30_000
const DEFAULT_STOP_GRACE_MS = 10_000
const KILL_WAIT_MS = 10_000
const LOG_TAIL_LINES = 200
const ERROR_LOG_LINES = 40

/**
 * A readiness probe: resolves true once the server answers. Throwing counts as "not yet". It gets
 * the server so it can check that the answer comes from this process (e.g. Redis's process_id).
 */
export type ReadinessProbe = (signal: AbortSignal, server: ServerProcess) => Promise<boolean>

export interface ServerProcessOptions {
  /** Binary name (installed with ensureBinary when missing) or absolute path. */
  readonly binary: string
  /** Arguments; a function receives the data directory. Called once: restarts reuse them. */
  readonly args: readonly string[] | ((dataDir: string) => readonly string[])
  /** Readiness probe, polled with a short backoff until it succeeds. */
  readonly ready: ReadinessProbe
  /** Label for log file name and errors. Default: the binary's base name. */
  readonly name?: string
  /** Runs once after the data directory is created and before the first spawn (write configs). */
  readonly setup?: (dataDir: string) => Promise<void> | void
  /** Extra environment variables (added to process.env). */
  readonly env?: Readonly<Record<string, string>>
  /** How long to wait for readiness (ms). Default 30 000. */
  readonly readyTimeoutMs?: number
  /** How long stop() waits after SIGTERM before SIGKILL (ms). Default 10 000. */
  readonly stopGraceMs?: number
}

export interface ExitInfo {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

const live = new Set<ServerProcess>()
const keepDirs = process.env.RX_DATASYNC_KEEP_SERVER_DIRS === '1'

/** Every ServerProcess that has not been cleaned up, in start order. */
export function liveServers(): readonly ServerProcess[] {
  return [...live]
}

/** Cleans up every ServerProcess of this process that was not cleaned up yet. */
export async function cleanupAllServers(): Promise<void> {
  const errors: unknown[] = []
  await Promise.all(
    [...live].map(async (server) => {
      try {
        await server.cleanup()
      } catch (err) {
        errors.push(err)
      }
    }),
  )
  if (errors.length > 0) throw new AggregateError(errors, 'cleaning up test servers failed')
}

/** Synchronous last resort: SIGKILL (after SIGCONT for paused ones) every live child. */
function killAllSync(): void {
  for (const server of live) server.killSync()
}

let exitHooksInstalled = false
function installExitHooks(): void {
  if (exitHooksInstalled) return
  exitHooksInstalled = true
  process.on('exit', killAllSync)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllSync()
      // Only re-raise when nobody else handles the signal, so the default action still happens.
      if (process.listenerCount(sig) === 1) {
        process.off(sig, onSignal)
        process.kill(process.pid, sig)
      }
    }
    process.on(sig, onSignal)
  }
}

/** Creates a fresh temporary directory `rx-datasync-<label>-XXXXXX` under os.tmpdir(). */
export function makeTempDir(label = 'server'): Promise<string> {
  const safe = label.replace(/[^a-zA-Z0-9_.-]/g, '_')
  return fs.mkdtemp(path.join(os.tmpdir(), `rx-datasync-${safe}-`))
}

function processState(pid: number): string | undefined {
  try {
    // /proc/PID/stat: "pid (comm) S ..."; comm may contain spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).charAt(0)
  } catch {
    return undefined
  }
}

export class ServerProcess {
  readonly name: string
  private readonly options: ServerProcessOptions
  private dir: string | undefined
  private resolvedArgs: readonly string[] | undefined
  private binaryPath: string | undefined
  private child: ChildProcess | undefined
  private exited: Promise<ExitInfo> | undefined
  private closed: Promise<void> | undefined
  private lastExit: ExitInfo | undefined
  private log: WriteStream | undefined
  private readonly tail: string[] = []
  private partial = ''
  private paused = false
  private cleanedUp = false
  private starts = 0

  constructor(options: ServerProcessOptions) {
    this.options = options
    this.name = options.name ?? path.basename(options.binary)
  }

  /** The data directory (exists after the first start()). */
  get dataDir(): string {
    if (this.dir === undefined) throw new Error(`${this.name}: not started yet, no data directory`)
    return this.dir
  }

  /** The log file that receives the process's stdout and stderr. */
  get logFile(): string {
    return path.join(this.dataDir, `${this.name}.log`)
  }

  /** The resolved arguments of the process. */
  get args(): readonly string[] {
    return this.resolvedArgs ?? []
  }

  /** The binary's absolute path (after start). */
  get binary(): string {
    return this.binaryPath ?? this.options.binary
  }

  /** Pid of the current child, or undefined when none is running. */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined
  }

  /** True while the child has been spawned and has not exited (a paused child is running). */
  get running(): boolean {
    return this.child !== undefined && this.lastExit === undefined
  }

  /** True between pause() and resume(). */
  get isPaused(): boolean {
    return this.paused
  }

  /** How the last child exited, if it did. */
  get exitInfo(): ExitInfo | undefined {
    return this.lastExit
  }

  /** The last (up to 200) lines the process wrote to stdout/stderr. */
  logTail(lines = LOG_TAIL_LINES): string {
    const all = this.partial === '' ? this.tail : [...this.tail, this.partial]
    return all.slice(-lines).join('\n')
  }

  /**
   * Creates the data directory (first time only), spawns the binary and waits until the readiness
   * probe succeeds. Rejects (after killing the child) when the process exits before it is ready
   * or readiness times out; the error names the binary, the args and the last log lines.
   */
  async start(): Promise<this> {
    if (this.cleanedUp) throw new Error(`${this.name}: cleaned up, cannot start again`)
    if (this.running) throw new Error(`${this.name}: already running (pid ${this.child?.pid})`)
    installExitHooks()
    live.add(this)
    this.binaryPath ??= await ensureBinary(this.options.binary)
    if (this.dir === undefined) {
      this.dir = await makeTempDir(this.name)
      const { args } = this.options
      this.resolvedArgs = typeof args === 'function' ? args(this.dir) : args
      await this.options.setup?.(this.dir)
    }
    this.spawnChild()
    await this.waitReady()
    return this
  }

  /** Starts again with the same args, ports and data directory (stopping first if running). */
  async restart(): Promise<this> {
    if (this.running) await this.stop()
    return this.start()
  }

  /** SIGTERM, wait for exit; SIGKILL when it has not exited within the grace period. */
  async stop(
    graceMs = this.options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
  ): Promise<ExitInfo | undefined> {
    const child = this.child
    if (child === undefined || !this.running) return this.lastExit
    this.signal('SIGTERM')
    // A stopped process only acts on SIGTERM once continued.
    if (this.paused) this.resume()
    const info = await this.waitExit(graceMs)
    if (info !== undefined) return info
    return this.kill()
  }

  /** SIGKILL (kill -9) and wait for the exit. */
  async kill(): Promise<ExitInfo | undefined> {
    if (this.child === undefined || !this.running) return this.lastExit
    this.signal('SIGKILL')
    const info = await this.waitExit(KILL_WAIT_MS)
    if (info === undefined) {
      throw new Error(
        `${this.name}: pid ${this.child.pid} did not exit within ${KILL_WAIT_MS} ms of SIGKILL`,
      )
    }
    return info
  }

  /** SIGSTOP: the process keeps its sockets but answers nothing. Resolves once it is stopped. */
  async pause(): Promise<void> {
    const pid = this.requirePid('pause')
    this.signal('SIGSTOP')
    this.paused = true
    if (processState(pid) === undefined) return // no /proc: trust the signal
    await pollUntil(() => processState(pid) === 'T' || processState(pid) === 't', {
      timeoutMs: 5_000,
      intervalMs: 2,
      maxIntervalMs: 20,
      description: `${this.name} (pid ${pid}) to stop after SIGSTOP`,
    })
  }

  /** SIGCONT after pause(). */
  resume(): void {
    this.requirePid('resume')
    this.signal('SIGCONT')
    this.paused = false
  }

  /** Kills the process if it is running and removes the data directory. Idempotent. */
  async cleanup(): Promise<void> {
    if (this.cleanedUp) return
    try {
      if (this.running) await this.kill()
    } finally {
      this.cleanedUp = true
      live.delete(this)
      await this.closeLog()
      if (this.dir !== undefined && !keepDirs) {
        await fs.rm(this.dir, { recursive: true, force: true, maxRetries: 3 })
      }
    }
  }

  /** @internal Synchronous SIGKILL for the process-exit hook. */
  killSync(): void {
    const pid = this.child?.pid
    if (pid !== undefined && this.running) {
      try {
        if (this.paused) process.kill(pid, 'SIGCONT')
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    if (this.dir !== undefined && !keepDirs) {
      try {
        rmSync(this.dir, { recursive: true, force: true })
      } catch {
        // best effort at exit
      }
    }
  }

  /** Describes the process for error messages: binary, args, data dir, exit and log tail. */
  describe(lines = ERROR_LOG_LINES): string {
    const exit = this.lastExit
    const exitText =
      exit === undefined
        ? 'still running'
        : `exited with ${exit.code !== null ? `code ${exit.code}` : exit.signal}`
    return [
      `  binary: ${this.binary}`,
      `  args: ${JSON.stringify(this.args)}`,
      `  data dir: ${this.dir ?? '(none)'}`,
      `  state: ${exitText}`,
      `  --- last log lines ---`,
      this.logTail(lines)
        .split('\n')
        .map((l) => `  | ${l}`)
        .join('\n'),
    ].join('\n')
  }

  private requirePid(what: string): number {
    const pid = this.pid
    if (pid === undefined) throw new Error(`${this.name}: cannot ${what}, not running`)
    return pid
  }

  private signal(sig: NodeJS.Signals): void {
    const pid = this.child?.pid
    if (pid === undefined) return
    try {
      process.kill(pid, sig)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err
    }
  }

  private spawnChild(): void {
    const dir = this.dataDir
    this.starts++
    this.log ??= createWriteStream(this.logFile, { flags: 'a' })
    const banner = `--- [harness] start #${this.starts}: ${this.binary} ${this.args.join(' ')}`
    this.log.write(`${banner}\n`)
    this.pushLines(`${banner}\n`)
    this.lastExit = undefined
    this.paused = false
    const child = spawn(this.binary, this.args, {
      cwd: dir,
      env: { ...process.env, ...this.options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: false,
    })
    this.child = child
    // A server left running must not keep the test process alive: the exit hook kills it then.
    child.unref()
    // With stdio 'pipe' the streams are net.Sockets.
    ;(child.stdout as Socket | null)?.unref()
    ;(child.stderr as Socket | null)?.unref()
    const onData = (chunk: Buffer): void => {
      this.log?.write(chunk)
      this.pushLines(chunk.toString('utf8'))
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    this.closed = new Promise<void>((resolve) => {
      child.once('close', () => {
        resolve()
      })
      child.once('error', () => {
        if (child.pid === undefined) resolve()
      })
    })
    this.exited = new Promise<ExitInfo>((resolve) => {
      child.once('error', (err) => {
        this.pushLines(`--- [harness] spawn error: ${err.message}\n`)
        if (child.pid === undefined) {
          this.lastExit = { code: null, signal: null }
          resolve(this.lastExit)
        }
      })
      child.once('exit', (code, signal) => {
        this.lastExit = { code, signal }
        this.paused = false
        resolve(this.lastExit)
      })
    })
  }

  private pushLines(text: string): void {
    const parts = (this.partial + text).split('\n')
    this.partial = parts.pop() ?? ''
    this.tail.push(...parts)
    if (this.tail.length > LOG_TAIL_LINES) this.tail.splice(0, this.tail.length - LOG_TAIL_LINES)
  }

  private async waitExit(timeoutMs: number): Promise<ExitInfo | undefined> {
    const exited = this.exited
    if (exited === undefined) return this.lastExit
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        resolve(undefined)
      }, timeoutMs)
    })
    try {
      return await Promise.race([exited, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  private async waitReady(): Promise<void> {
    const timeoutMs = this.options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS
    const exitedEarly = new AbortController()
    void this.exited?.then(() => {
      exitedEarly.abort(new Error('exited'))
    })
    try {
      await pollUntil(async (signal) => (await this.options.ready(signal, this)) && this.running, {
        timeoutMs,
        signal: exitedEarly.signal,
        attemptTimeoutMs: 1_000,
        description: `${this.name} to become ready`,
      })
    } catch (err) {
      const exited = this.lastExit !== undefined
      if (!exited) await this.kill().catch(() => undefined)
      // Let the last output reach the tail before describing it (bounded: a grandchild could
      // hold the pipes open).
      await Promise.race([
        this.closed,
        new Promise((resolve) => setTimeout(resolve, 1_000).unref()),
      ])
      const reason = exited
        ? `exited before it was ready`
        : `was not ready within ${timeoutMs} ms (${(err as Error).message})`
      throw new Error(`${this.name} ${reason}\n${this.describe()}`, { cause: err })
    }
  }

  private async closeLog(): Promise<void> {
    const log = this.log
    this.log = undefined
    if (log === undefined) return
    await new Promise<void>((resolve) => log.end(resolve))
  }
}

/** Creates a ServerProcess and starts it (see ServerProcess.start). */
export async function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const server = new ServerProcess(options)
  try {
    return await server.start()
  } catch (err) {
    await server.cleanup().catch(() => undefined)
    throw err
  }
}
