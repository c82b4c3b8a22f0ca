import type * as Chokidar from 'chokidar'
import { requirePeer } from '../../internal/optional-peer.js'

/**
 * chokidar's watcher class, loaded when `rx-datasync/filedb` is imported: without chokidar
 * installed the import fails with a `MissingPeerError` saying `npm install chokidar`. chokidar 5
 * is ESM-only; Node 20.19+ loads it through `require(esm)`, the same instance an import gives.
 */
export const { FSWatcher } = requirePeer('chokidar', 'rx-datasync/filedb') as typeof Chokidar

export type FSWatcher = Chokidar.FSWatcher
