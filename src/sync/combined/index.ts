export { createLayeredStore } from './layered.js'
export { createRoutedStore } from './routed.js'
export type {
  CombinedSource,
  CombinedStore,
  CombinedStoreOptions,
  LayeredStoreOptions,
  NamedSource,
  RoutedStoreOptions,
  SourceInput,
} from './types.js'
