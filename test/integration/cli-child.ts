/**
 * Runs the `rx-datasync` command as a child process, as a user would (through bin/, on the
 * TypeScript source in this checkout): for the CLI's integration tests.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pollUntil } from '../servers/index.js'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const BIN = join(ROOT, 'bin', 'rx-datasync.js')

/** The environment of every run: this process's, without anything that names a store. */
export const BASE_ENV: Record<string, string> = Object.fromEntries(
  Object.entries(process.env).filter(
    (entry): entry is [string, string] =>
      entry[1] !== undefined &&
      !/^(ETCD_CONFIG|REDIS_CONFIG|CONSUL_CONFIG|FILEDB_CONFIG|RX_DATASYNC_STORE|RX_DATASYNC_CLI|ETCD_ENDPOINTS|ETCDV3_ENDPOINTS|CONSUL_HTTP_ADDR|CONSUL_HTTP_TOKEN)$/.test(
        entry[0],
      ),
  ),
)

export interface RunOptions {
  readonly cwd?: string
  readonly env?: Record<string, string>
  readonly stdin?: string
}

export interface Finished {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  /** Milliseconds from spawn to exit. */
  readonly elapsedMs: number
}

/** A running `rx-datasync` child process. */
export function launch(args: readonly string[], options: RunOptions = {}) {
  const started = performance.now()
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...BASE_ENV, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
    // Never leave a child behind, whatever the test did.
    timeout: 100_000,
    killSignal: 'SIGKILL',
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  child.stdin.end(options.stdin)
  const exit = new Promise<Finished>((resolve) => {
    child.once('close', (code) => {
      resolve({ code, stdout, stderr, elapsedMs: performance.now() - started })
    })
  })
  return {
    exit,
    /** Waits until stderr holds a line matching `pattern`. */
    waitForStderr: (pattern: RegExp) =>
      pollUntil(() => stderr.split('\n').find((line) => pattern.test(line)), {
        timeoutMs: 60_000,
        description: `${String(pattern)} on stderr (stdout: ${stdout.slice(-500)}, stderr: ${stderr.slice(-500)})`,
      }),
    /** Waits until stdout holds a line matching `pattern`. */
    waitFor: (pattern: RegExp) =>
      pollUntil(() => stdout.split('\n').find((line) => pattern.test(line)), {
        timeoutMs: 60_000,
        description: `${String(pattern)} on stdout (stdout: ${stdout.slice(-500)}, stderr: ${stderr.slice(-500)})`,
      }),
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      child.kill(signal)
      return exit
    },
  }
}

/** Runs `rx-datasync` to its end. */
export function cli(args: readonly string[], options: RunOptions = {}): Promise<Finished> {
  return launch(args, options).exit
}

/** Each non-empty line of `text` parsed as JSON (throws on a line that is not). */
export function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}
