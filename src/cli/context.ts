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
}

/** What every command gets: output, its stores, the timeout, progress on stderr. */
export class CommandContext {
  readonly progress: Progress
  private readonly opened: OpenedStore[] = []

  constructor(
    readonly io: CliIo,
    readonly stores: StoreContext,
    /** `--timeout` in milliseconds. */
    readonly timeoutMs: number,
    /** `--store`, when given. */
    private readonly storeOption: string | undefined,
  ) {
    this.progress = createProgress(io.stderr, io.scheduler)
  }

  /** Writes a line to stdout (clearing progress first when both share the terminal). */
  out(line: string): void {
    if (this.io.stdout.isTTY === true) this.progress.clear()
    this.io.stdout.write(`${line}\n`)
  }

  /** Writes a line to stderr, after the progress line. */
  err(line: string): void {
    this.progress.clear()
    this.io.stderr.write(`rx-datasync: ${line}\n`)
  }

  /** The spec of the store of a one-store command (see {@link chooseStore}). */
  storeSpec(): string {
    return chooseStore(this.storeOption, this.stores)
  }

  /** Opens the store a spec names; every store opened is closed by {@link closeAll}. */
  async open(spec: string): Promise<OpenedStore> {
    const opened = await openTarget(await resolveTarget(spec, this.stores))
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
            with: () =>
              throwError(
                () => new UnavailableError(label, `no answer within ${ms} ms (--timeout)`),
              ),
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

  /** Closes every store opened, each bounded by the timeout; a failure to close is ignored. */
  async closeAll(): Promise<void> {
    const stores = this.opened.splice(0)
    await Promise.all(
      stores.map((opened) =>
        lastValueFrom(
          race(
            defer(() => opened.store.close()),
            timer(this.timeoutMs, this.io.scheduler),
          ),
          { defaultValue: undefined },
        ).catch(() => undefined),
      ),
    )
  }
}
