/** Every backend of the chaos run, by the name `--backend` takes, in the order they run. */
import type { Target } from '../target.js'
import { memoryTarget } from './memory.js'

export const TARGETS: Readonly<Record<string, () => Target>> = {
  memory: memoryTarget,
}
