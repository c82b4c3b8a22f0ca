/**
 * `rx-datasync/http-client`: a store over a server of `rx-datasync/http`, for Node 20 and
 * browsers. Nothing here imports from Node (test/browser/bundle.test.ts bundles it for the
 * browser and .dependency-cruiser.json forbids Node built-ins under src/http/client/).
 */
export { createHttpStore } from './http-store.js'
export type { FetchBodyReader, FetchLike, FetchResponse, HttpStoreOptions } from './options.js'
