import { formatWithOptions } from 'node:util'

/**
 * Routes what libraries print on their own (console.warn/error/log from a client, Node's process
 * warnings) to `sink`, so stderr under `--json` stays JSON lines; restores them when called back.
 */
export function captureWarnings(sink: (message: string) => void): () => void {
  const saved = { warn: console.warn, error: console.error, log: console.log }
  const forward = (...args: unknown[]) => {
    sink(formatWithOptions({ colors: false }, ...args))
  }
  console.warn = forward
  console.error = forward
  // A library's stray console.log would break stdout's JSON lines: it goes to stderr too.
  console.log = forward
  const listeners = process.listeners('warning')
  process.removeAllListeners('warning')
  const onWarning = (warning: Error) => {
    sink(`${warning.name}: ${warning.message}`)
  }
  process.on('warning', onWarning)
  return () => {
    Object.assign(console, saved)
    process.off('warning', onWarning)
    for (const listener of listeners) process.on('warning', listener)
  }
}
