import { dirname, resolve } from 'node:path'
import { z } from 'zod'
import { configPath, loadConfigFile, type ConfigLookup } from '../../internal/config.js'
import type { FileStoreOptions } from './options.js'

export type { ConfigLookup }

const schema = z.strictObject({
  'configuration-paths': z
    .array(z.string().min(1, 'expected a file or directory path'))
    .min(1, 'expected at least one file or directory'),
  'status-path': z.string().min(1, 'expected a file path').optional(),
})

/**
 * Loads the FileDB configuration named by the lookup's `file`, else `--filedb-config <file>` (or
 * `--filedb-config=<file>`), else the `FILEDB_CONFIG` environment variable: a YAML (or JSON) file
 * with
 *
 * - `configuration-paths`: the files and directories holding the data (directories recursively);
 * - `status-path` (optional): the file {@link FileStore.publishStatus} writes, JSON or YAML by
 *   its extension.
 *
 * Relative paths are resolved against the configuration file's directory. Resolves to the
 * store's options, or `undefined` when nothing names a file (FileDB is then not configured);
 * rejects with a `ConfigError` naming the file, line and field when the file is missing or
 * wrong.
 *
 * @example
 * ```ts
 * import { createFileStore, loadFileDbConfig } from 'rx-datasync/filedb'
 * // filedb.yaml:
 * //   configuration-paths: [conf.d, extra/routes.yaml]
 * //   status-path: run/status.json
 * const options = await loadFileDbConfig()
 * if (options) createFileStore(options).watch(['']).subscribe(console.log)
 * ```
 */
export async function loadFileDbConfig(
  lookup: ConfigLookup = {},
): Promise<FileStoreOptions | undefined> {
  const file = configPath({ flag: '--filedb-config', env: 'FILEDB_CONFIG' }, lookup)
  if (file === undefined) return undefined
  const config = await loadConfigFile(file, schema, lookup)
  const base = dirname(resolve(file))
  const statusPath = config['status-path']
  return {
    paths: config['configuration-paths'].map((path) => resolve(base, path)),
    ...(statusPath === undefined ? {} : { statusPath: resolve(base, statusPath) }),
  }
}
