import { asyncScheduler, firstValueFrom, timer, type SchedulerLike } from 'rxjs'
import { toMillis, type Duration } from '../core/duration.js'

/** What {@link onShutdown} drains: a {@link HealthHandler} or a {@link HealthServer}. */
export interface Drainable {
  drain(): void
}

/** Options of {@link onShutdown}. */
export interface ShutdownOptions {
  /** The signals that start the shutdown. @default ['SIGTERM', 'SIGINT'] */
  readonly signals?: readonly NodeJS.Signals[]
  /**
   * How long readiness answers 503 before `stop` runs, so that load balancers and Kubernetes
   * (which probe every few seconds) stop sending traffic first. Keep it below the pod's
   * `terminationGracePeriodSeconds` minus the time `stop` takes.
   *
   * @default '5s'
   */
  readonly grace?: Duration
  /** Closes what the application runs (the orchestrator, stores, servers), after the grace. */
  readonly stop?: () => Promise<void> | void
  /**
   * Ends the process once `stop` is done (code 0, or 1 when `stop` threw): listening for a signal
   * replaces Node's own exit on it, and a client library's open handle would keep it alive.
   *
   * @default true
   */
  readonly exit?: boolean
  /** Where the grace period is timed. @default asyncScheduler */
  readonly scheduler?: SchedulerLike
  /** Hears of a `stop` that threw (before the exit code 1). @default console.error */
  readonly onError?: (error: unknown) => void
}

/**
 * Installs the shutdown sequence Kubernetes expects: on SIGTERM (or SIGINT) readiness turns off
 * at once (the probes answer 503, with `"draining": true`), liveness stays as it is; after
 * `grace`, `stop` closes what the application runs, and the process exits. A second signal
 * during the grace skips what is left of it. Returns a function that removes the signal
 * listeners again (for tests, or an application that handles signals itself).
 *
 * ```
 * SIGTERM:    ----S------------------------
 * /readyz:    200-503--------------------
 * /livez:     200-200--------------------
 * stop():     ---------(grace)--x
 * process:                        exit 0
 * ```
 *
 * @example
 * ```ts
 * const server = await serveHealth({ health, metrics, port: 9191 })
 * onShutdown(server, {
 *   grace: '5s',
 *   stop: async () => {
 *     sync.close()
 *     await store.close()
 *     await server.close()
 *   },
 * })
 * ```
 */
export function onShutdown(target: Drainable, options: ShutdownOptions = {}): () => void {
  const signals = options.signals ?? ['SIGTERM', 'SIGINT']
  const graceMs = toMillis(options.grace ?? '5s', 'onShutdown grace')
  const scheduler = options.scheduler ?? asyncScheduler
  const exit = options.exit ?? true
  const report =
    options.onError ??
    ((error: unknown) => {
      console.error(error)
    })
  let started = false
  let skipGrace: (() => void) | undefined

  const listener = () => {
    if (started) {
      skipGrace?.()
      return
    }
    started = true
    target.drain()
    void (async () => {
      await Promise.race([
        firstValueFrom(timer(graceMs, scheduler)),
        new Promise<void>((resolve) => {
          skipGrace = resolve
        }),
      ])
      let code = 0
      try {
        await options.stop?.()
      } catch (error) {
        code = 1
        report(error)
      }
      if (exit) process.exit(code)
    })()
  }
  for (const signal of signals) process.on(signal, listener)
  return () => {
    for (const signal of signals) process.off(signal, listener)
  }
}
