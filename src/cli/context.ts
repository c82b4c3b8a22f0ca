import {
  defer,
  lastValueFrom,
  map,
  race,
  take,
  throwError,
  timeout,
  timer,
  type Observable,
  type SchedulerLike,
} from 'rxjs'
import { UnavailableError } from '../core/errors.js'
import { InterruptedError } from './errors.js'
import { createProgress, type Progress } from './progress.js'
import {
  chooseStore,
  openTarget,
  resolveTarget,
  type OpenedStore,
  type StoreContext,
} from './stores.js'

/** A stream the command writes to. */
export interface OutputStream {
  readonly isTTY?: boolean
  write(text: string): unknown
}

/** What the command reads from: stdin. */
export interface InputStream extends AsyncIterable<Buffer | string> {
  readonly isTTY?: boolean
}

/** The command's world: its streams, environment and signals (the process's, or a test's). */
export interface CliIo {
  readonly stdout: OutputStream
  readonly stderr: OutputStream
  readonly stdin: InputStream
  readonly env: Readonly<Record<string, string | undefined>>
  readonly cwd: string
  /** The names of the signals that should end the command (SIGINT, SIGTERM), as they come. */
  readonly signals: Observable<string>
  /** Where timeouts and progress take their time. */
  readonly scheduler: SchedulerLike
  /**
   * Sends what client libraries and Node print on their own (console warnings, process
   * warnings) to `sink` instead, until the returned function is called; under `--json` stderr
   * then stays one JSON object per line. The process's io does it; a test's may not.
   */
  readonly captureWarnings?: (sink: (message: string) => void) => () => void
}

/**
 * A line for stderr: plain `rx-datasync: message`, or under `--json` one JSON object
 * `{"level","message"}` (with `code`, the exit code, for the error that ends the command).
 */
export function stderrLine(
  json: boolean,
  level: 'error' | 'warning' | 'notice',
  message: string,
  code?: number,
): string {
  if (!json) return `rx-datasync: ${level === 'warning' ? 'warning: ' : ''}${message}\n`
  return `${JSON.stringify({ level, message, ...(code === undefined ? {} : { code }) })}\n`
}

/** What every command gets: output, its stores, the timeout, progress on stderr. */
export class CommandContext {
  readonly progress: Progress
  private readonly opened: OpenedStore[] = []
  /** Whether `--timeout` already ran out: closing then waits for nothing. */
  private expired = false

  constructor(
    readonly io: CliIo,
    readonly stores: StoreContext,
    /** `--timeout` in milliseconds. */
    readonly timeoutMs: number,
    /** `--store`, when given. */
    private readonly storeOption: string | undefined,
    /** `--json`: stderr is JSON lines too. */
    readonly json = false,
  ) {
    this.progress = createProgress(io.stderr, io.scheduler)
  }

  /** Writes a line to stdout (clearing progress first when both share the terminal). */
  out(line: string): void {
    if (this.io.stdout.isTTY === true) this.progress.clear()
    this.io.stdout.write(`${line}\n`)
  }

  /**
   * Writes a notice to stderr, after the progress line (a JSON object under `--json`); a line
   * starting `warning: ` is a warning.
   */
  err(line: string): void {
    this.progress.clear()
    const warning = line.startsWith('warning: ')
    this.io.stderr.write(
      stderrLine(this.json, warning ? 'warning' : 'notice', warning ? line.slice(9) : line),
    )
  }

  /** The spec of the store of a one-store command (see {@link chooseStore}). */
  storeSpec(): string {
    return chooseStore(this.storeOption, this.stores)
  }

  /**
   * Opens the store a spec names; every store opened is closed by {@link closeAll}. Notices of
   * the store (a Redis server's keyspace events set) go to stderr.
   */
  async open(
    spec: string,
    settings: { verifyKeyspaceEvents?: boolean } = {},
  ): Promise<OpenedStore> {
    const opened = await openTarget(await resolveTarget(spec, this.stores), {
      ...settings,
      notice: (message) => {
        this.err(message)
      },
    })
    this.opened.push(opened)
    return opened
  }

  /**
   * The single answer of a store operation, within `--timeout` (else an UnavailableError: exit
   * code 5); a signal interrupts it (exit code 130).
   */
  once<T>(label: string, operation: Observable<T>): Promise<T> {
    const ms = this.timeoutMs
    return lastValueFrom(
      race(
        operation.pipe(
          timeout({
            first: ms,
            scheduler: this.io.scheduler,
            with: () => {
              this.expire()
              return throwError(
                () => new UnavailableError(label, `no answer within ${ms} ms (--timeout)`),
              )
            },
          }),
        ),
        this.interrupted(),
      ),
    )
  }

  /** Errors with an InterruptedError at the first signal. */
  interrupted(): Observable<never> {
    return this.io.signals.pipe(
      take(1),
      map((signal) => {
        throw new InterruptedError(signal)
      }),
    )
  }

  /**
   * Records that `--timeout` ran out: a store that did not answer is not waited for again when
   * it closes, so the command ends at `--timeout`, not at twice it.
   */
  expire(): void {
    this.expired = true
  }

  /**
   * Closes every store opened, each bounded by the timeout (by nothing once it ran out, see
   * {@link expire}); a failure to close is ignored.
   */
  async closeAll(): Promise<void> {
    const stores = this.opened.splice(0)
    const bound = this.expired ? 0 : this.timeoutMs
    await Promise.all(
      stores.map((opened) =>
        lastValueFrom(
          race(
            defer(() => opened.store.close()),
            timer(bound, this.io.scheduler),
          ),
          { defaultValue: undefined },
        ).catch(() => undefined),
      ),
    )
  }
}
