/** A forced garbage collection in the parent, so one run's garbage is not collected in the next. */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

setFlagsFromString('--expose-gc')
const gcFunction = runInNewContext('gc') as () => void

/** Collects garbage now (twice: the second pass frees what finalizers released). */
export function collectGarbage(): void {
  gcFunction()
  gcFunction()
}
