import type { SchedulerLike } from 'rxjs'

/** A stream progress can be written to: stderr. */
export interface ProgressStream {
  readonly isTTY?: boolean
  write(text: string): unknown
}

/** A one-line progress display on a terminal; does nothing when the stream is not one. */
export interface Progress {
  /** Shows `text` (at most every `intervalMs`, unless `force`). */
  update(text: string, force?: boolean): void
  /** Erases the line (so the next output starts clean). */
  clear(): void
}

/**
 * Progress for long resyncs and mirrors: written on stderr, on one line redrawn in place, and
 * only when stderr is a terminal (so logs and pipes never see it). Time comes from the
 * scheduler.
 */
export function createProgress(
  stream: ProgressStream,
  scheduler: SchedulerLike,
  intervalMs = 100,
): Progress {
  if (stream.isTTY !== true) return { update: () => undefined, clear: () => undefined }
  let shown = false
  let last = -Infinity
  return {
    update(text, force = false) {
      const now = scheduler.now()
      if (!force && now - last < intervalMs) return
      last = now
      shown = true
      stream.write(`\r\u001b[K${text}`)
    },
    clear() {
      if (!shown) return
      shown = false
      last = -Infinity
      stream.write('\r\u001b[K')
    },
  }
}
