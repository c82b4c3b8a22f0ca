import {
  Observable,
  catchError,
  concat,
  defer,
  forkJoin,
  ignoreElements,
  map,
  mergeMap,
  of,
  switchMap,
  throwError,
} from 'rxjs'
import { valuesEqual } from '../../core/equal.js'
import { AuthError, DatasyncError } from '../../core/errors.js'
import { revision, type Revision } from '../../core/revision.js'
import type { TxnCondition, TxnResult } from '../../core/store.js'
import type { ConsulHttp } from './client.js'
import { NAME } from './errors.js'
import { base64, type Write } from './keys.js'
import type { RawEntry, TxnAnswer, TxnOperation } from './wire.js'

/**
 * How often a transaction with a value condition re-reads and tries again when the key changed
 * between the read and the commit, before it gives up with a retryable `conflict`.
 */
const MAX_ATTEMPTS = 10

/** What one Consul operation of a transaction stands for, to read its failure. */
type Role =
  /** A condition the caller gave: its failure means "conditions did not hold". */
  | 'condition'
  /** The check-index that pins a value condition to the value read: its failure means "re-read". */
  | 'guard'
  /** An operation the caller asked for. */
  | 'write'

/**
 * The Consul operations of the writes. A put is `delete` then `set` (or `lock`, held by the
 * session of its TTL): Consul's `set` keeps the session of a key that had a TTL, so without the
 * delete a plain put would leave the key to expire. So a put counts as two of Consul's operations.
 */
export function writeOperations(
  writes: readonly Write[],
  sessions: ReadonlyMap<number, string>,
): TxnOperation[] {
  return writes.flatMap((write): TxnOperation[] => {
    if (write.op === 'delete') {
      return [{ KV: { Verb: write.prefix ? 'delete-tree' : 'delete', Key: write.key } }]
    }
    const Value = base64(write.value)
    const session = write.ttl === undefined ? undefined : sessions.get(write.ttl)
    return [
      { KV: { Verb: 'delete', Key: write.key } },
      session === undefined
        ? { KV: { Verb: 'set', Key: write.key, Value } }
        : { KV: { Verb: 'lock', Key: write.key, Value, Session: session } },
    ]
  })
}

/**
 * Runs writes atomically under conditions through `PUT /v1/txn`:
 *
 * - `{ exists: false }` and `{ revision: 0n }` are `check-not-exists`; `{ exists: true }` is a
 *   `get` (it fails on a missing key); `{ revision }` is `check-index`;
 * - `{ value }` has no Consul verb: the key is read first, compared here, and pinned with a
 *   `check-index` of the ModifyIndex read; when another write slips in between, the transaction
 *   reads again and retries (up to 10 times);
 * - each distinct TTL gets one session (behaviour `delete`), created before the transaction and
 *   destroyed again when the transaction does not commit.
 *
 * The revision of a committed transaction is its raft index (the ModifyIndex of its puts); for
 * one that only deletes, or did not commit, it is the index of a listing of the first key it
 * touched, read right after (Consul has no cheap read of its global index).
 */
export function runTxn(
  http: ConsulHttp,
  writes: readonly Write[],
  conditions: readonly TxnCondition<Uint8Array>[],
  what: string,
): Observable<TxnResult> {
  return defer(() => {
    const ttls = [
      ...new Set(writes.flatMap((w) => (w.op === 'put' && w.ttl !== undefined ? [w.ttl] : []))),
    ]
    if (ttls.length === 0) return attempt(http, writes, conditions, new Map(), what, 1)
    return forkJoin(
      ttls.map((ttl) => http.createSession(ttl).pipe(map((id) => [ttl, id] as const))),
    ).pipe(
      switchMap((pairs) => {
        const sessions = new Map(pairs)
        const release = destroyAll(http, sessions)
        return attempt(http, writes, conditions, sessions, what, 1).pipe(
          mergeMap((result) => (result.succeeded ? of(result) : concat(release, of(result)))),
          catchError((error: unknown) =>
            concat(
              release,
              throwError(() => error),
            ),
          ),
        )
      }),
    )
  })
}

/** Destroys sessions that hold nothing, ignoring failures (an unused session expires anyway). */
function destroyAll(http: ConsulHttp, sessions: ReadonlyMap<number, string>): Observable<never> {
  return forkJoin(
    [...sessions.values()].map((id) =>
      http.destroySession(id).pipe(catchError(() => of(undefined))),
    ),
  ).pipe(ignoreElements())
}

function attempt(
  http: ConsulHttp,
  writes: readonly Write[],
  conditions: readonly TxnCondition<Uint8Array>[],
  sessions: ReadonlyMap<number, string>,
  what: string,
  tries: number,
): Observable<TxnResult> {
  const valueKeys = conditions.flatMap((c) => ('value' in c ? [c.key] : []))
  const reads: Observable<readonly { readonly entry: RawEntry | undefined }[]> =
    valueKeys.length === 0 ? of([]) : forkJoin(valueKeys.map((key) => http.get(key)))
  return reads.pipe(
    switchMap((read) => {
      const operations: TxnOperation[] = []
      const roles: Role[] = []
      let next = 0
      for (const condition of conditions) {
        if ('value' in condition) {
          const entry = read[next++]?.entry
          const held = entry?.Value ?? new Uint8Array(0)
          if (entry === undefined || !valuesEqual(held, condition.value)) {
            return notRun(http, conditions, writes)
          }
          operations.push({
            KV: { Verb: 'check-index', Key: condition.key, Index: entry.ModifyIndex },
          })
          roles.push('guard')
        } else {
          operations.push(conditionOperation(condition))
          roles.push('condition')
        }
      }
      const writing = writeOperations(writes, sessions)
      operations.push(...writing)
      roles.push(...writing.map((): Role => 'write'))
      return http.txn(operations, what).pipe(
        catchError((error: unknown) =>
          throwError(() => explainTooMany(error, writes, conditions, operations.length)),
        ),
        switchMap((answer) => {
          if (answer.ok) return committed(http, answer, writes, conditions)
          const failed = answer.errors.map((e) => ({
            role: roles[e.OpIndex] ?? 'write',
            what: e.What,
          }))
          const denied = failed.some((f) => /permission denied|acl not found/i.test(f.what))
          if (denied || failed.some((f) => f.role === 'write')) {
            return throwError(() => rolledBack(what, answer.errors))
          }
          if (failed.some((f) => f.role === 'condition')) return notRun(http, conditions, writes)
          if (tries >= MAX_ATTEMPTS) {
            return throwError(
              () =>
                new DatasyncError(
                  'conflict',
                  `${NAME} ${what}: a value condition's key kept changing between the read and the commit (${tries} tries); try again`,
                ),
            )
          }
          return attempt(http, writes, conditions, sessions, what, tries + 1)
        }),
      )
    }),
  )
}

function conditionOperation(
  condition: Exclude<TxnCondition<Uint8Array>, { readonly value: Uint8Array }>,
): TxnOperation {
  if ('exists' in condition) {
    return { KV: { Verb: condition.exists ? 'get' : 'check-not-exists', Key: condition.key } }
  }
  // As in etcd, a missing key's revision is 0.
  return condition.revision === 0n
    ? { KV: { Verb: 'check-not-exists', Key: condition.key } }
    : { KV: { Verb: 'check-index', Key: condition.key, Index: Number(condition.revision) } }
}

function committed(
  http: ConsulHttp,
  answer: Extract<TxnAnswer, { ok: true }>,
  writes: readonly Write[],
  conditions: readonly TxnCondition<Uint8Array>[],
): Observable<TxnResult> {
  if (writes.some((w) => w.op === 'put')) {
    // The puts' entries carry the transaction's raft index; reads carry older ones.
    let at = 0
    for (const result of answer.results) at = Math.max(at, result.KV?.ModifyIndex ?? 0)
    return of({ succeeded: true, revision: revision(BigInt(at)) })
  }
  return indexAround(http, conditions, writes).pipe(
    map((at) => ({ succeeded: true, revision: at })),
  )
}

function notRun(
  http: ConsulHttp,
  conditions: readonly TxnCondition<Uint8Array>[],
  writes: readonly Write[],
): Observable<TxnResult> {
  return indexAround(http, conditions, writes).pipe(
    map((at) => ({ succeeded: false, revision: at })),
  )
}

/**
 * The index of a keys listing of the first key written (or conditioned): at least the index of
 * that key's last write or delete, at most the store's index.
 */
function indexAround(
  http: ConsulHttp,
  conditions: readonly TxnCondition<Uint8Array>[],
  writes: readonly Write[],
): Observable<Revision> {
  const key = writes[0]?.key ?? conditions[0]?.key
  if (key === undefined) return of(revision(0n))
  return http.keys(key).pipe(map((listing) => revision(listing.index)))
}

/** The error of a transaction Consul rolled back for a reason other than a condition. */
export function rolledBack(
  what: string,
  errors: readonly { readonly OpIndex: number; readonly What: string }[],
): DatasyncError {
  const reasons = errors.map((e) => `operation ${e.OpIndex}: ${e.What}`).join('; ')
  if (/permission denied|acl not found/i.test(reasons)) {
    return new AuthError(
      NAME,
      `the ACL token may not do ${what} (${reasons}); grant the token a policy that covers the keys`,
    )
  }
  return new DatasyncError(
    'internal',
    `${NAME} ${what}: Consul rolled the transaction back (${reasons})`,
  )
}

function explainTooMany(
  error: unknown,
  writes: readonly Write[],
  conditions: readonly unknown[],
  operations: number,
): unknown {
  if (!(error instanceof DatasyncError) || !/too many operations/i.test(error.message)) return error
  const limit = /\(\d+ > (\d+)\)/.exec(error.message)?.[1] ?? 'fewer'
  const puts = writes.filter((w) => w.op === 'put').length
  return new DatasyncError(
    'invalid-argument',
    `${NAME} txn: the transaction needs ${operations} Consul operations but the agent allows ${limit}: each put counts as two (a delete and a set, so that a put clears an earlier TTL), each delete and each condition as one (here ${puts} puts, ${writes.length - puts} deletes, ${conditions.length} conditions). Split it into smaller transactions; the parts are then not atomic together.`,
    { cause: error },
  )
}
