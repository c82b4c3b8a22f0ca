import { asyncScheduler, fromEvent, map, merge, share } from 'rxjs'
import type { CliIo } from './context.js'
import { run } from './run.js'
import { captureWarnings } from './warnings.js'

/** The process's own streams, environment and signals. */
function processIo(): CliIo {
  const signal = (name: 'SIGINT' | 'SIGTERM') =>
    fromEvent(process, name).pipe(map(() => name as string))
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
    signals: merge(signal('SIGINT'), signal('SIGTERM')).pipe(share()),
    scheduler: asyncScheduler,
    captureWarnings,
  }
}

// A reader that went away (`rx-datasync list | head`) is no failure.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0)
  throw error
})

const code = await run(process.argv.slice(2), processIo())
// Let stdout and stderr drain, then exit even if a client library keeps a handle open.
for (const stream of [process.stdout, process.stderr]) {
  await new Promise<void>((resolve) => {
    stream.write('', () => {
      resolve()
    })
  })
}
process.exit(code)
