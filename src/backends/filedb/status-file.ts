import { defer, type Observable } from 'rxjs'
import { ConfigError } from '../../core/errors.js'
import { NAME } from './errors.js'
import { writeFileAtomic } from './files.js'
import { encodeStatus, type FileFormat } from './format.js'
import { JobQueue } from './jobs.js'

/**
 * The one file the store writes: the application's state, as JSON or YAML by its extension,
 * replaced atomically. Writes are applied one at a time, in the order they were asked for.
 */
export class StatusFile {
  readonly #path: string | undefined
  readonly #format: FileFormat | undefined
  readonly #writes = new JobQueue()

  /** `path` (absolute) and its `format`; no status file when undefined. */
  constructor(path: string | undefined, format: FileFormat | undefined) {
    this.#path = path
    this.#format = format
  }

  /**
   * Writes `state` (cold: on subscribe, after the writes asked for before).
   *
   * @throws ConfigError (as the error of the result) when no status file is configured.
   */
  publish(state: unknown): Observable<void> {
    return defer(() => {
      const path = this.#path
      if (path === undefined || this.#format === undefined) {
        throw new ConfigError(
          `${NAME} options`,
          'statusPath',
          'no status file is configured; set status-path to publish the status',
        )
      }
      const text = encodeStatus(this.#format, state)
      return this.#writes.enqueue(() => writeFileAtomic(path, text))
    })
  }

  /** Resolves when the writes asked for so far are done. */
  idle(): Promise<void> {
    return this.#writes.idle()
  }
}
