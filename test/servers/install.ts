/**
 * Makes sure the server binaries the integration tests need are installed.
 *
 * A binary already on PATH (or in /usr/bin, /usr/sbin, /usr/local/bin) is used as it is. Otherwise
 * its Debian package is installed with apt-get (which needs root). apt runs under a lock file in
 * os.tmpdir() so that test files running in parallel workers do not run apt concurrently, and
 * `apt-get update` runs at most once per process.
 */
import { spawn } from 'node:child_process'
import { constants as fsConstants, accessSync, statSync } from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

const LOG_PREFIX = '[rx-datasync test servers]'

/** How a binary is obtained when it is missing. */
export interface BinarySpec {
  /** Debian package that ships the binary, installed with apt-get when the binary is missing. */
  readonly debianPackage?: string
  /**
   * A custom installer, used instead of apt-get (e.g. for Consul, which is not in Debian's main
   * archive). It must leave the binary on PATH or in one of the standard bin directories.
   */
  readonly install?: (name: string) => Promise<void>
  /** What to tell a person who must install it by hand. */
  readonly manualHint?: string
}

const BINARIES = new Map<string, BinarySpec>([
  ['etcd', { debianPackage: 'etcd-server' }],
  ['etcdctl', { debianPackage: 'etcd-client' }],
  ['redis-server', { debianPackage: 'redis-server' }],
  ['redis-sentinel', { debianPackage: 'redis-sentinel' }],
  ['redis-cli', { debianPackage: 'redis-tools' }],
])

/** Binaries the harness knows how to install. */
export type KnownBinary = 'etcd' | 'etcdctl' | 'redis-server' | 'redis-sentinel' | 'redis-cli'

/**
 * Registers (or replaces) how a binary is installed: the hook for servers added later, e.g.
 * `registerBinary('consul', { install: installConsul, manualHint: '...' })`.
 */
export function registerBinary(name: string, spec: BinarySpec): void {
  BINARIES.set(name, spec)
}

const EXTRA_BIN_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/bin', '/sbin']

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK)
    return statSync(file).isFile()
  } catch {
    return false
  }
}

/** The absolute path of `name` on PATH or in the standard bin directories, if any. */
export function findBinary(name: string): string | undefined {
  if (name.includes('/')) return isExecutableFile(name) ? path.resolve(name) : undefined
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), ...EXTRA_BIN_DIRS]
  for (const dir of new Set(dirs.filter((d) => d !== ''))) {
    const candidate = path.join(dir, name)
    if (isExecutableFile(candidate)) return candidate
  }
  return undefined
}

function manualInstructions(name: string, spec: BinarySpec | undefined): string {
  if (spec?.manualHint !== undefined) return spec.manualHint
  if (spec?.debianPackage !== undefined) {
    return `Install the Debian package ${spec.debianPackage} by hand: sudo apt-get install -y ${spec.debianPackage}`
  }
  return `Install ${name} by hand and put it on PATH.`
}

// ---------------------------------------------------------------------------------------------
// Locking: in-process serialization plus a cross-process lock file.

const LOCK_PATH = path.join(os.tmpdir(), 'rx-datasync-apt.lock')
const LOCK_TIMEOUT_MS = 20 * 60_000
const LOCK_STALE_MS = 30 * 60_000

let inProcessQueue: Promise<unknown> = Promise.resolve()

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function lockIsStale(): Promise<boolean> {
  try {
    const [content, stat] = await Promise.all([fs.readFile(LOCK_PATH, 'utf8'), fs.stat(LOCK_PATH)])
    if (Date.now() - stat.mtimeMs > LOCK_STALE_MS) return true
    const pid = Number.parseInt(content.trim(), 10)
    // An empty file is a lock being written right now: not stale.
    if (!Number.isInteger(pid) || pid <= 0) return false
    return !pidAlive(pid)
  } catch (err) {
    // Vanished between attempts: not stale, just retry.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

async function acquireFileLock(): Promise<void> {
  const deadline = performance.now() + LOCK_TIMEOUT_MS
  let interval = 50
  let announced = false
  for (;;) {
    try {
      const handle = await fs.open(LOCK_PATH, 'wx')
      try {
        await handle.writeFile(`${process.pid}\n`)
      } finally {
        await handle.close()
      }
      return
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    if (await lockIsStale()) {
      await fs.rm(LOCK_PATH, { force: true })
      continue
    }
    if (performance.now() > deadline) {
      throw new Error(
        `${LOG_PREFIX} timed out waiting for the install lock ${LOCK_PATH}; remove it if no install is running`,
      )
    }
    if (!announced) {
      process.stderr.write(
        `${LOG_PREFIX} waiting for another test process to finish installing (${LOCK_PATH})\n`,
      )
      announced = true
    }
    await sleep(interval)
    interval = Math.min(interval * 2, 1_000)
  }
}

/** Runs `fn` while holding the install lock (in this process and across processes). */
async function withInstallLock<T>(fn: () => Promise<T>): Promise<T> {
  const run = inProcessQueue.then(async () => {
    await acquireFileLock()
    try {
      return await fn()
    } finally {
      await fs.rm(LOCK_PATH, { force: true })
    }
  })
  inProcessQueue = run.catch(() => undefined)
  return run
}

// ---------------------------------------------------------------------------------------------
// apt-get

interface CommandResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly output: string
}

function runCommand(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    const chunks: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk))
    child.once('error', reject)
    child.once('close', (code, signal) => {
      resolve({ code, signal, output: Buffer.concat(chunks).toString('utf8') })
    })
  })
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

let aptUpdated = false

async function aptGet(args: readonly string[], what: string, manual: string): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  let result: CommandResult
  try {
    result = await runCommand('apt-get', args, env)
  } catch (err) {
    throw new Error(`${LOG_PREFIX} could not run apt-get (${(err as Error).message}). ${manual}`, {
      cause: err,
    })
  }
  if (result.code !== 0) {
    throw new Error(
      `${LOG_PREFIX} ${what} failed (apt-get ${args.join(' ')} exited with ${result.code ?? result.signal}). ${manual}\n--- apt-get output (last lines) ---\n${tail(result.output, 40)}`,
    )
  }
}

async function installWithApt(name: string, pkg: string, manual: string): Promise<void> {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error(
      `${LOG_PREFIX} ${name} not found and not running as root, so apt-get cannot install it. ${manual}`,
    )
  }
  if (findBinary('apt-get') === undefined) {
    throw new Error(`${LOG_PREFIX} ${name} not found and apt-get is not available. ${manual}`)
  }
  const started = performance.now()
  process.stderr.write(
    `${LOG_PREFIX} ${name} not found: installing Debian package ${pkg} with apt-get ...\n`,
  )
  if (!aptUpdated) {
    process.stderr.write(`${LOG_PREFIX} running apt-get update ...\n`)
    await aptGet(['update'], 'apt-get update', manual)
    aptUpdated = true
  }
  process.stderr.write(`${LOG_PREFIX} running apt-get install -y ${pkg} ...\n`)
  await aptGet(
    ['install', '-y', '--no-install-recommends', '-o', 'DPkg::Lock::Timeout=300', pkg],
    `installing ${pkg}`,
    manual,
  )
  const seconds = ((performance.now() - started) / 1000).toFixed(1)
  process.stderr.write(`${LOG_PREFIX} installed ${pkg} in ${seconds} s\n`)
}

const resolved = new Map<string, Promise<string>>()

/**
 * The absolute path of binary `name`, installing its package first when it is missing. Throws an
 * Error that names the package to install by hand when it cannot be installed.
 */
export function ensureBinary(name: KnownBinary | (string & {})): Promise<string> {
  const found = findBinary(name)
  if (found !== undefined) return Promise.resolve(found)
  let pending = resolved.get(name)
  if (pending === undefined) {
    pending = installBinary(name)
    resolved.set(name, pending)
    // A failure is not cached: a later call may try again (e.g. after a manual install).
    pending.catch(() => resolved.delete(name))
  }
  return pending
}

async function installBinary(name: string): Promise<string> {
  const spec = BINARIES.get(name)
  const manual = manualInstructions(name, spec)
  if (spec === undefined || (spec.install === undefined && spec.debianPackage === undefined)) {
    throw new Error(
      `${LOG_PREFIX} ${name} not found and the harness does not know how to install it. ${manual}`,
    )
  }
  await withInstallLock(async () => {
    // Another process may have installed it while this one waited for the lock.
    if (findBinary(name) !== undefined) return
    if (spec.install !== undefined) {
      process.stderr.write(`${LOG_PREFIX} ${name} not found: installing it ...\n`)
      await spec.install(name)
    } else if (spec.debianPackage !== undefined) {
      await installWithApt(name, spec.debianPackage, manual)
    }
  })
  const found = findBinary(name)
  if (found === undefined) {
    throw new Error(
      `${LOG_PREFIX} installing ${name} finished but ${name} is still not on PATH. ${manual}`,
    )
  }
  return found
}
