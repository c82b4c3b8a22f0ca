import { createRequire } from 'node:module'
import type * as PromClient from 'prom-client'

/** prom-client's module, or why it could not be loaded. */
export type PromLoad =
  | { readonly ok: true; readonly client: typeof PromClient }
  | { readonly ok: false; readonly reason: string }

let loaded: PromLoad | undefined

/**
 * Loads prom-client, an optional peer dependency, on first use: an application that never asks
 * for Prometheus text never needs it installed.
 */
export function loadPromClient(): PromLoad {
  if (loaded) return loaded
  try {
    const require = createRequire(import.meta.url)
    loaded = { ok: true, client: require('prom-client') as typeof PromClient }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    loaded = {
      ok: false,
      reason:
        code === 'MODULE_NOT_FOUND'
          ? 'prom-client is not installed; run `npm install prom-client` (an optional peer dependency of rx-datasync) to serve Prometheus text'
          : `prom-client could not be loaded: ${error instanceof Error ? error.message : String(error)}`,
    }
  }
  return loaded
}
