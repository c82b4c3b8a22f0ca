/** One route: keys under `prefix` belong to source `source`, unless a longer route takes them. */
export interface Route {
  readonly prefix: string
  readonly source: number
}

/**
 * A routing table by key prefix: a key belongs to the source of the longest route it starts
 * with (none when no route matches).
 */
export class Routes {
  /** Longest prefix first, so the first match is the owner. */
  readonly #routes: readonly Route[]

  constructor(routes: readonly Route[]) {
    this.#routes = [...routes].sort((a, b) => b.prefix.length - a.prefix.length)
  }

  /** The routes, longest prefix first. */
  get list(): readonly Route[] {
    return this.#routes
  }

  /** The source `key` belongs to, if any. */
  owner(key: string): number | undefined {
    for (const route of this.#routes) if (key.startsWith(route.prefix)) return route.source
    return undefined
  }

  /**
   * What each source must read to cover `prefixes`: a requested prefix goes to the source that
   * owns it (it may also hold keys of longer routes of other sources: those are filtered out by
   * {@link owner}), and each route under a requested prefix goes to its source, narrowed to the
   * route. A source's prefixes are disjoint (one under another is dropped). Sources in order.
   */
  plan(prefixes: readonly string[]): Map<number, string[]> {
    const wanted = new Map<number, string[]>()
    const add = (source: number, prefix: string) => {
      const list = wanted.get(source)
      if (list === undefined) wanted.set(source, [prefix])
      else list.push(prefix)
    }
    for (const prefix of prefixes) {
      const owner = this.owner(prefix)
      if (owner !== undefined) add(owner, prefix)
      for (const route of this.#routes) {
        if (route.prefix.length > prefix.length && route.prefix.startsWith(prefix)) {
          add(route.source, route.prefix)
        }
      }
    }
    const plan = new Map<number, string[]>()
    for (const source of [...wanted.keys()].sort((a, b) => a - b)) {
      plan.set(source, outermost(wanted.get(source) ?? []))
    }
    return plan
  }

  /** Whether a route of another source than `source` starts with `prefix` (and is longer). */
  foreignUnder(source: number, prefix: string): boolean {
    return this.#routes.some(
      (route) =>
        route.source !== source &&
        route.prefix.length > prefix.length &&
        route.prefix.startsWith(prefix),
    )
  }
}

/** The prefixes not under another one of the list, without repeats, shortest first. */
export function outermost(prefixes: readonly string[]): string[] {
  const kept: string[] = []
  for (const prefix of [...new Set(prefixes)].sort((a, b) => a.length - b.length)) {
    if (!kept.some((outer) => prefix.startsWith(outer))) kept.push(prefix)
  }
  return kept
}
