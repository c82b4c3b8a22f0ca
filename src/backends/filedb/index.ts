export { createFileStore } from './file-store.js'
export type { FileStore, FileStoreOptions } from './options.js'
export { loadFileDbConfig } from './config.js'
export type { ConfigLookup } from './config.js'
