export { createFileStore } from './file-store.js'
export type { FileStore, FileStoreOptions } from './file-store.js'
export { loadFileDbConfig } from './config.js'
