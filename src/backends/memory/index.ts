export { createMemoryStore } from './memory-store.js'
export type { MemoryStore, MemoryStoreOptions } from './memory-store.js'
