import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { toMillis } from '../core/duration.js'
import { describe } from '../core/errors.js'
import { closeNames } from '../internal/config-fields.js'
import { flag, stringOption, type Command, type OptionSpec, type OptionValues } from './command.js'
import { del, duration, get, list, put } from './commands/kv.js'
import { mirror } from './commands/mirror.js'
import { ping } from './commands/ping.js'
import { serve } from './commands/serve.js'
import { watch } from './commands/watch.js'
import { CommandContext, stderrLine, type CliIo } from './context.js'
import { EXIT, UsageError, exitCodeOf } from './errors.js'
import { BACKENDS, CONFIG_SOURCES, STORE_ENV, type Backend } from './stores.js'

/** Every subcommand, in the order help lists them. */
export const COMMANDS: readonly Command[] = [watch, get, put, del, list, mirror, ping, serve]

const DEFAULT_TIMEOUT = '10s'

const STORE_OPTION: Readonly<Record<string, OptionSpec>> = {
  store: {
    type: 'string',
    short: 's',
    arg: '<store>',
    help: 'the store: a URL or a backend name (see Stores below)',
  },
}

const COMMON_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  ...Object.fromEntries(
    BACKENDS.map((backend) => [
      CONFIG_SOURCES[backend].flag.slice(2),
      {
        type: 'string',
        arg: '<file>',
        help: `${backend} configuration file (or ${CONFIG_SOURCES[backend].env})`,
      } satisfies OptionSpec,
    ]),
  ),
  'expand-env': {
    type: 'boolean',
    help: 'expand ${VAR} and ${VAR:-default} in configuration files',
  },
  timeout: {
    type: 'string',
    arg: '<duration>',
    help: `how long to wait for a store, with a unit: '500ms', '30s', '1m30s' (default ${DEFAULT_TIMEOUT})`,
  },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
}

/** `rx-datasync --version`: read before any command, so only the global help lists it. */
const VERSION_OPTION: Readonly<Record<string, OptionSpec>> = {
  version: { type: 'boolean', short: 'v', help: 'print the version and exit' },
}

const STORES_HELP = `Stores:
  etcd://host:port[,host:port...]     etcd (etcd://user:password@host:port with auth)
  redis://[[user]:password@]host:port[/db]
  rediss://[[user]:password@]host:port[/db]
                                      one Redis server (rediss: over TLS)
  consul://host:port                  a Consul agent
  file:///path/to/dir-or-file         JSON/YAML files (FileDB, read-only); file:relative/path
  http(s)://host:port                 a store served by 'rx-datasync serve' (bearer token in
                                      RX_DATASYNC_HTTP_TOKEN)
  postgres://[user[:password]@]host:port/database[?sslmode=require]
                                      a PostgreSQL table (rx_datasync_kv, created if missing)
  etcd | redis | consul | filedb | postgres
                                      the backend configured by its file: --etcd-config,
                                      --redis-config, --consul-config, --filedb-config,
                                      --postgres-config, or ETCD_CONFIG, REDIS_CONFIG,
                                      CONSUL_CONFIG, FILEDB_CONFIG, POSTGRES_CONFIG
  Without --store: the backend named by a config flag, else ${STORE_ENV} (a URL or
  name), else the backend named by a config environment variable.`

const EXIT_HELP = `Exit codes:
  0    success (watch and mirror: also when ended by SIGINT or SIGTERM)
  1    the operation failed (refused by the store, a write to a read-only store, a failed
       mirror write)
  2    usage error (unknown command or option, wrong arguments, malformed store URL)
  3    not found (get of a key that does not exist)
  4    configuration error (a configuration file missing or invalid, an unset variable
       under --expand-env, credentials refused, the backend's client package not
       installed: the message says what to npm install)
  5    store unavailable (cannot connect, or no answer within --timeout)
  130  interrupted (SIGINT or SIGTERM during get, put, del or list)`

/**
 * Runs the `rx-datasync` command with its arguments (without `node` and the script) and
 * resolves to its exit code; never rejects. Output goes to `io`.
 */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  let context: CommandContext | undefined
  let command: Command | undefined
  // Under --json stderr is JSON lines too (read again once the options are parsed).
  let json = argv.includes('--json')
  let release: (() => void) | undefined
  try {
    const [name, ...rest] = argv
    if (name === undefined) {
      io.stderr.write(globalHelp())
      return EXIT.usage
    }
    if (name === '-h' || name === '--help') {
      io.stdout.write(globalHelp())
      return EXIT.ok
    }
    if (name === '--version' || name === '-v') {
      io.stdout.write(`${await version()}\n`)
      return EXIT.ok
    }
    if (name === 'help') {
      const topic = rest[0]
      const about = COMMANDS.find((c) => c.name === topic)
      if (topic !== undefined && about === undefined) {
        throw new UsageError(`unknown command '${topic}'${didYouMean(topic)}`)
      }
      io.stdout.write(about ? commandHelp(about) : globalHelp())
      return EXIT.ok
    }
    command = COMMANDS.find((c) => c.name === name)
    if (command === undefined) {
      throw new UsageError(
        name.startsWith('-')
          ? `expected a command before '${name}'`
          : `unknown command '${name}'${didYouMean(name) || `; the commands are ${COMMANDS.map((c) => c.name).join(', ')}`}`,
      )
    }
    const options = optionsOf(command)
    let values: OptionValues
    let positionals: string[]
    try {
      const parsed = parseArgs({
        args: [...rest],
        options: Object.fromEntries(
          Object.entries(options).map(([key, spec]) => [
            key,
            spec.short === undefined ? { type: spec.type } : { type: spec.type, short: spec.short },
          ]),
        ),
        allowPositionals: true,
        strict: true,
      })
      values = parsed.values
      positionals = parsed.positionals
    } catch (error) {
      const message = describe(error).split('. To specify')[0] ?? describe(error)
      const unknown = /^Unknown option '--([^']+)'/.exec(message)?.[1]
      const close = unknown === undefined ? [] : closeNames(unknown, Object.keys(options))
      throw new UsageError(
        close.length === 0
          ? message
          : `${message}; did you mean ${close.map((name) => `'--${name}'`).join(' or ')}?`,
        command.name,
      )
    }
    if (flag(values, 'help')) {
      io.stdout.write(commandHelp(command))
      return EXIT.ok
    }
    const { min, max, names } = command.positionals
    if (positionals.length < min || positionals.length > max) {
      throw new UsageError(
        max === 0
          ? `${command.name} takes no arguments, got '${positionals.join(' ')}'`
          : `${command.name} expects ${names}, got ${positionals.length === 0 ? 'nothing' : `'${positionals.join(' ')}'`}`,
        command.name,
      )
    }
    const timeoutText = stringOption(values, 'timeout') ?? DEFAULT_TIMEOUT
    const timeoutMs = toMillis(duration('--timeout', timeoutText))
    if (timeoutMs === 0) throw new UsageError('--timeout: expected a duration above 0')
    const configFiles: Partial<Record<Backend, string>> = {}
    for (const backend of BACKENDS) {
      const file = stringOption(values, CONFIG_SOURCES[backend].flag.slice(2))
      if (file === '') throw new UsageError(`${CONFIG_SOURCES[backend].flag}: expected a file path`)
      if (file !== undefined) configFiles[backend] = file
    }
    json = flag(values, 'json')
    if (json && io.captureWarnings) {
      release = io.captureWarnings((message) => {
        io.stderr.write(stderrLine(true, 'warning', message))
      })
    }
    context = new CommandContext(
      io,
      { env: io.env, cwd: io.cwd, configFiles, expandEnv: flag(values, 'expand-env') },
      timeoutMs,
      stringOption(values, 'store'),
      json,
    )
    return await command.run(context, values, positionals)
  } catch (error) {
    const code = exitCodeOf(error)
    if (context) context.progress.clear()
    io.stderr.write(stderrLine(json, 'error', describe(error), code))
    if (code === EXIT.usage && !json) {
      const about = error instanceof UsageError ? (error.command ?? command?.name) : command?.name
      io.stderr.write(
        about === undefined
          ? "Run 'rx-datasync --help' for the commands.\n"
          : `Run 'rx-datasync ${about} --help' for its options.\n`,
      )
    }
    return code
  } finally {
    await context?.closeAll()
    release?.()
  }
}

/** "; did you mean 'get'?" for a misspelt command name, or '' when none is close. */
function didYouMean(name: string): string {
  const close = closeNames(
    name,
    COMMANDS.map((c) => c.name),
  )
  return close.length === 0 ? '' : `; did you mean ${close.map((c) => `'${c}'`).join(' or ')}?`
}

function optionsOf(command: Command): Readonly<Record<string, OptionSpec>> {
  return {
    ...(command.store === 'one' ? STORE_OPTION : {}),
    ...command.options,
    ...COMMON_OPTIONS,
  }
}

/** The help of `rx-datasync --help`. */
export function globalHelp(): string {
  const usage = (c: Command) => c.usage.replace(' [options]', '')
  const width = Math.max(...COMMANDS.map((c) => usage(c).length)) + 2
  return `rx-datasync: read, write, watch and mirror key-value data in etcd, Redis, Consul or files

Usage: rx-datasync <command> [options]

Commands:
${COMMANDS.map((c) => `  ${usage(c).padEnd(width)}${c.summary}`).join('\n')}

Options of every command (mirror takes --from and --to instead of --store):
${optionLines({ ...STORE_OPTION, ...COMMON_OPTIONS, ...VERSION_OPTION })}

${STORES_HELP}

${EXIT_HELP}

Run 'rx-datasync <command> --help' for a command's options.
`
}

/** The help of `rx-datasync <command> --help`. */
export function commandHelp(command: Command): string {
  return `Usage: rx-datasync ${command.usage}

${command.description}

Options:
${optionLines({ ...command.options, ...(command.store === 'one' ? STORE_OPTION : {}), ...COMMON_OPTIONS })}

${STORES_HELP}

${EXIT_HELP}
`
}

function optionLines(options: Readonly<Record<string, OptionSpec>>): string {
  const entries = Object.entries(options).map(([name, spec]) => {
    const short = spec.short === undefined ? '    ' : `-${spec.short}, `
    return [
      `  ${short}--${name}${spec.arg === undefined ? '' : ` ${spec.arg}`}`,
      spec.help,
    ] as const
  })
  const width = Math.max(...entries.map(([left]) => left.length)) + 2
  return entries.map(([left, help]) => `${left.padEnd(width)}${help}`).join('\n')
}

async function version(): Promise<string> {
  // src/cli and dist/cli are both two levels under the package root.
  const text = await readFile(new URL('../../package.json', import.meta.url), 'utf8')
  return (JSON.parse(text) as { version?: string }).version ?? 'unknown'
}
