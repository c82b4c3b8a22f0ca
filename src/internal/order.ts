// The one key order lives in the core (snapshots sort by it too); backends take it from here.
export { byKey, compareKeys } from '../core/order.js'
