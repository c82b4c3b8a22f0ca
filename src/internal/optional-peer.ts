import { createRequire } from 'node:module'
import { DatasyncError } from '../core/errors.js'

/**
 * The optional peer dependencies (the clients a backend talks through), with the version range
 * `package.json` declares for each. A unit test keeps this table equal to `peerDependencies`.
 */
export const OPTIONAL_PEERS: Readonly<Record<string, string>> = {
  // ~: the etcd backend reaches into etcd3's connection pool (test/unit/etcd-pool-internals).
  etcd3: '~1.1.2',
  ioredis: '^6.0.0',
  consul: '^2.0.0',
  chokidar: '^5.0.0',
  protobufjs: '^8.0.0',
  pg: '^8.11.0',
  '@nats-io/transport-node': '^3.4.0',
  '@nats-io/jetstream': '^3.4.0',
  '@nats-io/kv': '^3.4.0',
}

/**
 * A backend's client library is not installed. Its `code` is `config` (the command exits 4);
 * the message names the package to install and the subpath that needs it.
 */
export class MissingPeerError extends DatasyncError {
  override readonly name = 'MissingPeerError'
  constructor(
    /** The npm package that is missing, e.g. `etcd3`. */
    readonly packageName: string,
    /** What needs it, e.g. `rx-datasync/etcd`. */
    readonly feature: string,
    cause: unknown,
  ) {
    const range = OPTIONAL_PEERS[packageName]
    super(
      'config',
      `${feature} needs the ${packageName} client, which is not installed: run \`npm install ${packageName}\` (an optional peer dependency of rx-datasync${range === undefined ? '' : `, version ${range}`})`,
      { cause },
    )
  }
}

const requireHere = createRequire(import.meta.url)

/**
 * Loads an optional peer dependency synchronously, so that importing a backend's subpath fails
 * at once with {@link MissingPeerError} when its client is missing, instead of Node's bare
 * "Cannot find package". CommonJS clients come through `require`; ESM-only ones (chokidar)
 * through `require(esm)`, which Node 20.19+ supports. Either way it is the same module
 * instance an `import` of the package would give.
 *
 * A missing package that the client itself depends on is not reported as the client missing:
 * the original error is rethrown.
 */
export function requirePeer(packageName: string, feature: string): unknown {
  try {
    return requireHere(packageName)
  } catch (error) {
    if (isMissing(error, packageName)) throw new MissingPeerError(packageName, feature, error)
    throw error
  }
}

function isMissing(error: unknown, packageName: string): boolean {
  if (!(error instanceof Error)) return false
  const code = (error as NodeJS.ErrnoException).code
  if (code !== 'MODULE_NOT_FOUND' && code !== 'ERR_MODULE_NOT_FOUND') return false
  // "Cannot find module 'etcd3'" (require) or "Cannot find package 'etcd3'" (import).
  return error.message.includes(`'${packageName}'`)
}
