/**
 * A real PostgreSQL 15 server of its own for a test file: `initdb` in a temporary directory, the
 * postmaster on a free loopback port with its unix socket in that directory, never the machine's
 * own server on 5432. PostgreSQL refuses to run as root, so the directory is handed to the
 * `postgres` user and `initdb` and the server run as that user (through `setpriv`, which execs
 * the server in place: the process the harness holds is the postmaster itself, so `kill()` is a
 * kill -9 of the postmaster and `pause()` a SIGSTOP of it).
 */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { LOOPBACK, freePort } from './ports.js'
import { ServerProcess, type ExitInfo } from './process.js'
import { pollUntil } from './wait.js'

const run = promisify(execFile)

/** Where Debian's PostgreSQL 15 keeps its programs (also linked from /usr/local/bin). */
const BIN_DIRS = ['/usr/lib/postgresql/15/bin', '/usr/local/bin']
const USER = 'postgres'

function pgBinary(name: string): string {
  for (const dir of BIN_DIRS) {
    const full = path.join(dir, name)
    if (existsSync(full)) return full
  }
  throw new Error(
    `[test/servers] ${name} not found in ${BIN_DIRS.join(' or ')}: install Debian's postgresql-15`,
  )
}

/** The uid and gid of the `postgres` user. */
async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', USER]), run('id', ['-g', USER])])
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
}

/** Options of {@link startPostgres}. */
export interface PostgresOptions {
  /** Default a free port. */
  readonly port?: number
  /** Label of the data directory and log. Default `postgres`. */
  readonly name?: string
  /** Extra `-c name=value` settings of the server. */
  readonly settings?: Readonly<Record<string, string>>
  /** Readiness timeout (ms). Default 60 000 (initdb and start on a busy machine). */
  readonly readyTimeoutMs?: number
}

/** The pids of the processes whose parent is `pid` (the postmaster's backends). */
function childrenOf(pid: number): number[] {
  const children: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[1]) === pid) children.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return children
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name)
  } catch {
    // gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * One PostgreSQL server: user `postgres` with trust authentication on loopback, database
 * `postgres`, `fsync` off (a kill -9 of the server loses nothing committed: only an OS crash
 * would), everything else as initdb leaves it.
 */
export class PostgresServer extends ServerProcess {
  readonly port: number
  readonly host = LOOPBACK
  readonly user = USER
  readonly database = 'postgres'
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  readonly url: string
  /** The backends stopped by {@link pause}. */
  private stoppedBackends: number[] = []

  constructor(
    options: PostgresOptions & {
      readonly port: number
      readonly ids: { uid: number; gid: number }
    },
  ) {
    const { port, ids } = options
    const settings: Record<string, string> = {
      listen_addresses: LOOPBACK,
      fsync: 'off',
      full_page_writes: 'off',
      max_connections: '200',
      shared_buffers: '32MB',
      ...options.settings,
    }
    super({
      binary: '/usr/bin/setpriv',
      name: options.name ?? 'postgres',
      args: (dir) => [
        `--reuid=${ids.uid}`,
        `--regid=${ids.gid}`,
        '--init-groups',
        pgBinary('postgres'),
        '-D',
        path.join(dir, 'data'),
        '-p',
        String(port),
        '-k',
        path.join(dir, 'socket'),
        ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
      ],
      setup: async (dir) => {
        await fs.mkdir(path.join(dir, 'socket'))
        await fs.chown(dir, ids.uid, ids.gid)
        await fs.chown(path.join(dir, 'socket'), ids.uid, ids.gid)
        await run(
          '/usr/bin/setpriv',
          [
            `--reuid=${ids.uid}`,
            `--regid=${ids.gid}`,
            '--init-groups',
            pgBinary('initdb'),
            '-D',
            path.join(dir, 'data'),
            '-U',
            USER,
            '--auth=trust',
            '--encoding=UTF8',
            '--locale=C.UTF-8',
            '--no-sync',
          ],
          { cwd: dir },
        )
      },
      ready: async (signal, server) => {
        // The answer must come from this postmaster: postmaster.pid names it.
        const pidFile = path.join(server.dataDir, 'data', 'postmaster.pid')
        const first = readFileSync(pidFile, 'utf8').split('\n')[0]
        if (Number(first) !== server.pid) return false
        const client = new pg.Client({
          host: LOOPBACK,
          port,
          user: USER,
          database: 'postgres',
          connectionTimeoutMillis: 1_000,
        })
        signal.addEventListener('abort', () => void client.end().catch(() => undefined))
        try {
          await client.connect()
          await client.query('SELECT 1')
          return true
        } finally {
          await client.end().catch(() => undefined)
        }
      },
      readyTimeoutMs: options.readyTimeoutMs ?? 60_000,
      stopGraceMs: 20_000,
    })
    this.port = port
    this.url = `postgres://${USER}@${LOOPBACK}:${port}/postgres`
  }

  /** Connection settings for `pg` (and the store): host, port, user, database. */
  connection(): { host: string; port: number; user: string; database: string } {
    return { host: LOOPBACK, port: this.port, user: USER, database: this.database }
  }

  /** Runs one statement over a fresh connection and returns its rows. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values: readonly unknown[] = [],
  ): Promise<R[]> {
    const client = new pg.Client({ ...this.connection(), connectionTimeoutMillis: 5_000 })
    await client.connect()
    try {
      return (await client.query<R>(text, values as unknown[])).rows
    } finally {
      await client.end().catch(() => undefined)
    }
  }

  /**
   * kill -9 of the postmaster. Its backends notice their parent's death and exit by themselves;
   * the call waits for them (and kills what is left after 10 s), so a restart finds no old
   * backend holding the shared memory.
   */
  override async kill(): Promise<ExitInfo | undefined> {
    const pid = this.pid
    const children = pid === undefined ? [] : childrenOf(pid)
    const info = await super.kill()
    try {
      await pollUntil(() => children.every((child) => !alive(child)), {
        timeoutMs: 10_000,
        description: `the backends of postgres (pid ${pid}) to exit after its kill -9`,
      })
    } catch {
      for (const child of children) signal(child, 'SIGKILL')
    }
    return info
  }

  /**
   * SIGSTOP of the postmaster and of every backend (a stopped postmaster alone would still let
   * open connections answer): the whole server hangs, connections stay open.
   */
  override async pause(): Promise<void> {
    const pid = this.pid
    this.stoppedBackends = pid === undefined ? [] : childrenOf(pid)
    await super.pause()
    for (const child of this.stoppedBackends) signal(child, 'SIGSTOP')
  }

  /** SIGCONT of the backends stopped by {@link pause}, then of the postmaster. */
  override resume(): void {
    for (const child of this.stoppedBackends) signal(child, 'SIGCONT')
    this.stoppedBackends = []
    super.resume()
  }

  /** Terminates the backends whose `application_name` is `name`; resolves how many. */
  async terminate(applicationName: string): Promise<number> {
    const rows = await this.query<{ count: string }>(
      'SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS count FROM pg_stat_activity WHERE application_name = $1',
      [applicationName],
    )
    return Number(rows[0]?.count ?? 0)
  }

  /** How many connections with this `application_name` the server holds. */
  async connections(applicationName: string): Promise<number> {
    const rows = await this.query<{ count: string }>(
      'SELECT count(*) AS count FROM pg_stat_activity WHERE application_name = $1',
      [applicationName],
    )
    return Number(rows[0]?.count ?? 0)
  }
}

/** Starts a PostgreSQL 15 server of its own (initdb on the first start) and waits for it. */
export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const port = options.port ?? (await freePort())
  const server = new PostgresServer({ ...options, port, ids: await postgresIds() })
  try {
    await server.start()
    return server
  } catch (err) {
    await server.cleanup().catch(() => undefined)
    throw err
  }
}
