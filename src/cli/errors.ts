import { DatasyncError } from '../core/errors.js'

/**
 * The exit codes of the `rx-datasync` command, which scripts can rely on:
 *
 * | code | meaning |
 * | --- | --- |
 * | 0 | success (`watch` and `mirror` also when ended by SIGINT or SIGTERM) |
 * | 1 | the operation failed (refused by the backend, a write to a read-only store, a mirror write that failed) |
 * | 2 | usage error: unknown command or option, missing or extra argument, malformed store URL |
 * | 3 | not found: `get` of a key that does not exist |
 * | 4 | configuration error: a configuration file missing or invalid, an unset variable under `--expand-env`, credentials refused, the backend's client package (etcd3, ioredis, consul, chokidar) not installed |
 * | 5 | backend unavailable: the store could not be reached, or did not answer within `--timeout` |
 * | 130 | interrupted (SIGINT or SIGTERM) during `get`, `put`, `del` or `list` |
 */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  notFound: 3,
  config: 4,
  unavailable: 5,
  interrupted: 130,
} as const

/** A command line the command does not understand: exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
  constructor(
    message: string,
    /** The command whose help the message points at, if any. */
    readonly command?: string,
  ) {
    super(message)
  }
}

/** `get` of a key that does not exist: exit code 3. */
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError'
  constructor(readonly key: string) {
    super(`key '${key}' not found`)
  }
}

/** The command was interrupted by a signal: exit code 130. */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError'
  constructor(readonly signal: string) {
    super(`interrupted by ${signal}`)
  }
}

/** The exit code an error ends the command with (see {@link EXIT}). */
export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return EXIT.usage
  if (error instanceof NotFoundError) return EXIT.notFound
  if (error instanceof InterruptedError) return EXIT.interrupted
  if (error instanceof DatasyncError) {
    switch (error.code) {
      case 'config':
      case 'auth':
        return EXIT.config
      case 'unavailable':
      case 'timeout':
        return EXIT.unavailable
      default:
        return EXIT.failed
    }
  }
  return EXIT.failed
}
