import {
  EMPTY,
  concatMap,
  defer,
  expand,
  from,
  map,
  of,
  reduce,
  retry,
  tap,
  throwError,
  type Observable,
} from 'rxjs'
import type { Etcd3 } from 'etcd3'
import { DatasyncError } from '../../core/errors.js'
import { unary } from './client.js'
import { keyAfter, type KeyRange } from './keys.js'
import { decodeRangeResponse, type WireKeyValue, type WireRangeResponse } from './wire/decode.js'
import { encodeRangeRequest } from './wire/encode.js'

/** What a listing needs from its store. */
export interface ListContext {
  readonly client: Etcd3
  /** The most keys one page asks for. */
  readonly pageSize: number
  /** A raw call through the store's edge (bounded, mapped, refused once the store is closed). */
  call<T>(what: string, run: () => Promise<T>): Observable<T>
}

/** What one listing reads. */
export interface ListRequest<T> {
  readonly ranges: readonly KeyRange[]
  /** Keys only, no values. */
  readonly keysOnly: boolean
  /** What the listing is for, in error messages. */
  readonly what: string
  /** Turns each key-value of a page into an item, as the page arrives. */
  readonly convert: (kv: WireKeyValue) => T
}

/**
 * Pages aim at this many bytes (the client accepts replies up to 64 MiB). etcd 3.4 walks the
 * rest of the range's index for every page (to count it), so fewer, larger pages are much faster:
 * 100k keys of 80 bytes read in pages of 1000 took 3x as long as in pages of 20000.
 */
const PAGE_TARGET_BYTES = 16 * 1024 * 1024
/** The first page of a listing asks for at most this many keys (their size is unknown yet). */
const FIRST_PAGE = 32
/** How often a listing starts over when its revision is compacted under it. */
const LIST_ATTEMPTS = 5

/**
 * Every key in the request's ranges at one revision, in pages: the first page fixes the revision
 * R and every later page reads R, so writes during the listing cannot make it inconsistent.
 * Starts over when R is compacted under it.
 *
 * Every page is linearizable (a later page waits until the member has applied R), the first
 * included, for a watch's snapshot too: a write that any client saw completed before the listing
 * began is in it. (A serializable first page, answered from a member's applied state, saved a
 * round through the raft leader but let a lagging member of a cluster leave such a write out of
 * a consumer's first snapshot, to arrive later as a change with no previous value.)
 *
 * Each page is converted as it arrives, so the client's own objects for a page (a dozen per key)
 * are garbage before the next page comes: a listing of 100k keys never holds them all at once.
 *
 * ```
 * pages:    p1(R, 32 keys)--p2(R)--p3(R)--|
 * listRanges:                             {R, items}|
 * ```
 */
export function listRanges<T>(
  context: ListContext,
  request: ListRequest<T>,
): Observable<{ revision: bigint; items: T[] }> {
  const { client, pageSize } = context
  const { ranges, keysOnly, what, convert } = request
  return defer(() => {
    let pinned: bigint | undefined
    let limit = Math.min(FIRST_PAGE, pageSize)
    let bytes = 0
    let count = 0
    const page = (range: KeyRange, start: Buffer): Observable<WireRangeResponse> =>
      context
        .call(what, () =>
          unary(
            client,
            'Range',
            encodeRangeRequest({
              key: start,
              rangeEnd: range.end,
              limit,
              revision: pinned ?? 0n,
              keysOnly,
            }),
            decodeRangeResponse,
          ),
        )
        .pipe(
          tap((response) => {
            pinned ??= response.revision
            for (const kv of response.kvs) bytes += kv.key.length + kv.value.length + 64
            count += response.kvs.length
            const average = count === 0 ? 64 : bytes / count
            limit = Math.max(1, Math.min(pageSize, Math.floor(PAGE_TARGET_BYTES / average)))
          }),
        )
    return from(ranges).pipe(
      concatMap((range) =>
        page(range, range.start).pipe(
          expand((response) => {
            const lastKey = response.lastKey
            return response.more && lastKey !== undefined ? page(range, keyAfter(lastKey)) : EMPTY
          }),
        ),
      ),
      reduce((items: T[], response) => {
        for (const kv of response.kvs) items.push(convert(kv))
        return items
      }, []),
      map((items) => ({ revision: pinned ?? 0n, items })),
    )
  }).pipe(
    retry({
      count: LIST_ATTEMPTS,
      delay: (error: unknown) =>
        error instanceof DatasyncError && error.code === 'compacted'
          ? of(0)
          : throwError(() => error),
    }),
  )
}
