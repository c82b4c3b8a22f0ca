/**
 * Makes sure the server binaries the integration tests need are installed.
 *
 * A binary already on PATH (or in /usr/bin, /usr/sbin, /usr/local/bin) is used as it is. Otherwise
 * its Debian package is installed with apt-get (which needs root). apt runs under a lock file in
 * os.tmpdir() so that test files running in parallel workers do not run apt concurrently, and
 * `apt-get update` runs at most once per process.
 */
import os from 'node:os'
import path from 'node:path'
import { isExecutableFile, LOG_PREFIX, runCommand, tail, withFileLock } from './install-shared.js'

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

/** Runs `fn` while holding the install lock (in this process and across processes). */
function withInstallLock<T>(fn: () => Promise<T>): Promise<T> {
  return withFileLock(
    {
      path: LOCK_PATH,
      timeoutMs: 20 * 60_000,
      // Any lock older than this is stale; one with no pid yet (being written) never is before.
      staleAfterMs: 30 * 60_000,
      initialPollMs: 50,
      maxPollMs: 1_000,
      waitingMessage: `waiting for another test process to finish installing (${LOCK_PATH})`,
      timeoutMessage: `timed out waiting for the install lock ${LOCK_PATH}; remove it if no install is running`,
    },
    fn,
  )
}

// ---------------------------------------------------------------------------------------------
// apt-get

let aptUpdated = false

async function aptGet(args: readonly string[], what: string, manual: string): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const result = await runCommand('apt-get', args, { env }).catch((err: unknown) => {
    throw new Error(`${LOG_PREFIX} could not run apt-get (${(err as Error).message}). ${manual}`, {
      cause: err,
    })
  })
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
