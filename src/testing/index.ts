export {
  ackAfter,
  changesOf,
  describeEvent,
  scriptedStore,
  snapshotOf,
} from './marbles.js'
