/**
 * The Consul agent for integration tests, built from source with the Go toolchain.
 *
 * Consul is not in Debian, and its releases from August 2023 on are not open source, so the harness
 * builds one pinned release under the Mozilla Public License 2.0 (hashicorp/consul v1.14.8, June
 * 2023) from the Go module proxy, once, and caches the binary outside the repository:
 * `${XDG_CACHE_HOME:-~/.cache}/rx-datasync/consul-1.14.8/consul`. Later runs (and CI on the same
 * machine) reuse it. A cross-process lock file beside it keeps parallel test files from building
 * twice. `RX_DATASYNC_CONSUL` may name another consul binary to use instead.
 *
 * Why 1.14.8 and not 1.15/1.16: from 1.15 on, Consul's main module needs two of its nested modules
 * (`consul/envoyextensions`, `consul/troubleshoot`) that the module proxy here refuses to serve;
 * 1.14.8 needs only `consul/api`, `consul/sdk` and `consul/proto-public`, which it serves. The
 * module zip leaves out those nested directories, so the build drops the `replace ./api` (etc.)
 * lines of go.mod and takes the modules from the proxy instead: `sdk` v0.13.0 and `proto-public`
 * v0.2.1 as go.mod requires them, and `api` v1.18.1 rather than v1.18.0, because the 1.14.8 tree
 * uses `api.RaftServer.LastIndex`, which the 1.14 line's api module gained only in v1.18.1 (every
 * one of these modules is under MPL 2.0).
 */
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {
  type CommandOptions,
  isExecutableFile,
  LOG_PREFIX,
  runCommand,
  tail,
  withFileLock,
} from './install-shared.js'

/** The pinned Consul release: the last 1.14 patch, tagged 2023-06-23 under MPL 2.0. */
export const CONSUL_VERSION = '1.14.8'
const MODULE = 'github.com/hashicorp/consul'
/** The nested modules whose `replace ./dir` lines are dropped (the proxy serves them). */
const NESTED_MODULES = ['api', 'sdk', 'proto-public'].map((name) => `${MODULE}/${name}`)
/** The api module of the 1.14 line that has everything the 1.14.8 tree uses. */
const API_MODULE = `${MODULE}/api@v1.18.1`

/** How long one build may take (two shared cores, `nice -n 19`). */
const BUILD_TIMEOUT_MS = 60 * 60_000
/** How long to wait for another process's build. */
const LOCK_TIMEOUT_MS = 70 * 60_000
/** A lock file older than this whose pid is gone, or any older than twice this, is stale. */
const LOCK_STALE_MS = 75 * 60_000

/** What a test that builds Consul should give its `beforeAll` hook as timeout. */
export const CONSUL_BUILD_TIMEOUT_MS = LOCK_TIMEOUT_MS + BUILD_TIMEOUT_MS

/** The cache directory of the pinned release: `${XDG_CACHE_HOME:-~/.cache}/rx-datasync/consul-<v>`. */
export function consulCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache')
  return path.join(base, 'rx-datasync', `consul-${CONSUL_VERSION}`)
}

/** Where the cached binary is (whether or not it exists yet). */
export function consulBinaryPath(): string {
  return path.join(consulCacheDir(), 'consul')
}

let pending: Promise<string> | undefined

/**
 * The absolute path of a Consul agent binary: `RX_DATASYNC_CONSUL` when set, else the cached
 * build, building it first (several minutes, once) when it is missing. Says on stderr what it
 * does. Rejects with the build's output when the build fails.
 */
export function ensureConsul(): Promise<string> {
  const override = process.env.RX_DATASYNC_CONSUL
  if (override !== undefined && override !== '') {
    if (!isExecutableFile(override)) {
      return Promise.reject(
        new Error(`${LOG_PREFIX} RX_DATASYNC_CONSUL=${override} is not an executable file`),
      )
    }
    return Promise.resolve(path.resolve(override))
  }
  const binary = consulBinaryPath()
  if (isExecutableFile(binary)) return Promise.resolve(binary)
  pending ??= buildLocked(binary).finally(() => {
    pending = undefined
  })
  return pending
}

async function buildLocked(binary: string): Promise<string> {
  const dir = path.dirname(binary)
  await fs.mkdir(dir, { recursive: true })
  const lock = `${dir}.lock`
  await withFileLock(
    {
      path: lock,
      timeoutMs: LOCK_TIMEOUT_MS,
      staleAfterMs: 2 * LOCK_STALE_MS,
      // A pid is written right after the file is created: a minute without one is a dead owner.
      emptyStaleAfterMs: 60_000,
      initialPollMs: 100,
      maxPollMs: 2_000,
      waitingMessage: `waiting for another test process that is building consul (lock ${lock}) ...`,
      timeoutMessage: `timed out waiting for another process to build consul (lock ${lock}); remove the lock if no build is running`,
    },
    async () => {
      // Another process may have built it while this one waited.
      if (!isExecutableFile(binary)) await build(binary)
    },
  )
  return binary
}

// ---------------------------------------------------------------------------------------------
// The build

function goBinary(): string {
  const candidates = [
    process.env.GOROOT ? path.join(process.env.GOROOT, 'bin', 'go') : undefined,
    ...(process.env.PATH ?? '').split(path.delimiter).map((d) => (d ? path.join(d, 'go') : '')),
    '/usr/local/go/bin/go',
    '/usr/lib/go/bin/go',
  ]
  for (const candidate of candidates) {
    if (candidate && isExecutableFile(candidate)) return candidate
  }
  throw new Error(
    `${LOG_PREFIX} consul not found and there is no Go toolchain to build it (looked on PATH and in /usr/local/go/bin). Install Go, or set RX_DATASYNC_CONSUL to a consul ${CONSUL_VERSION} binary.`,
  )
}

async function step(
  what: string,
  command: string,
  args: readonly string[],
  options: CommandOptions & { cwd: string; timeoutMs: number },
): Promise<string> {
  const result = await runCommand(command, args, options)
  if (result.code !== 0) {
    throw new Error(
      `${LOG_PREFIX} building consul failed at: ${what} (${command} ${args.join(' ')} exited with ${result.code ?? result.signal})\n--- output (last lines) ---\n${tail(result.output, 60)}`,
    )
  }
  return result.output
}

async function build(binary: string): Promise<void> {
  const go = goBinary()
  const started = performance.now()
  process.stderr.write(
    `${LOG_PREFIX} consul not found: building hashicorp/consul v${CONSUL_VERSION} with Go (one time, cached in ${path.dirname(binary)}) ...\n`,
  )
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'rx-datasync-consul-build-'))
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // The machine's own Go, never a toolchain download; module mode even without a go.work.
    GOTOOLCHAIN: 'local',
    GOFLAGS: '-mod=mod',
    GO111MODULE: 'on',
    CGO_ENABLED: '0',
  }
  try {
    process.stderr.write(`${LOG_PREFIX}   downloading ${MODULE}@v${CONSUL_VERSION} ...\n`)
    const downloaded = await step(
      'go mod download',
      go,
      ['mod', 'download', '-json', `${MODULE}@v${CONSUL_VERSION}`],
      { cwd: work, env, timeoutMs: 20 * 60_000 },
    )
    const info = JSON.parse(downloaded) as { Dir?: string; Error?: string }
    if (info.Dir === undefined) {
      throw new Error(
        `${LOG_PREFIX} building consul failed: go mod download gave no directory (${info.Error ?? downloaded})`,
      )
    }
    const src = path.join(work, 'src')
    await fs.cp(info.Dir, src, { recursive: true })
    await makeWritable(src)
    await step(
      'go mod edit',
      go,
      [
        'mod',
        'edit',
        ...NESTED_MODULES.map((module) => `-dropreplace=${module}`),
        `-require=${API_MODULE}`,
      ],
      { cwd: src, env, timeoutMs: 60_000 },
    )
    const niceBinary = ['/usr/bin/nice', '/bin/nice'].find(isExecutableFile)
    const out = path.join(work, 'consul')
    const buildArgs = ['build', '-trimpath', '-ldflags', '-s -w', '-o', out, '.']
    process.stderr.write(
      `${LOG_PREFIX}   compiling (go build, nice -n 19; several minutes on two cores) ...\n`,
    )
    await step(
      'go build',
      niceBinary ?? go,
      niceBinary === undefined ? buildArgs : ['-n', '19', go, ...buildArgs],
      { cwd: src, env, timeoutMs: BUILD_TIMEOUT_MS },
    )
    const version = await step('consul version', out, ['version'], {
      cwd: work,
      env,
      timeoutMs: 60_000,
    })
    if (!version.includes(`Consul v${CONSUL_VERSION}`)) {
      throw new Error(
        `${LOG_PREFIX} the consul binary built says ${JSON.stringify(tail(version, 3))}, expected Consul v${CONSUL_VERSION}`,
      )
    }
    // Atomic: a reader sees no binary or the whole one.
    const staged = `${binary}.${process.pid}.tmp`
    await fs.copyFile(out, staged)
    await fs.chmod(staged, 0o755)
    await fs.rename(staged, binary)
    const seconds = ((performance.now() - started) / 1000).toFixed(0)
    process.stderr.write(
      `${LOG_PREFIX} built consul v${CONSUL_VERSION} in ${seconds} s: ${binary}\n`,
    )
  } finally {
    // The module cache leaves read-only files; the copy was made writable.
    await fs.rm(work, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined)
  }
}

async function makeWritable(dir: string): Promise<void> {
  await fs.chmod(dir, 0o755)
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) await makeWritable(full)
    else if (entry.isFile()) await fs.chmod(full, 0o644)
  }
}
