import type { CommandContext } from './context.js'

/** One option of a command, as `parseArgs` takes it, with its help. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean'
  readonly short?: string
  /** The argument's name in help, e.g. `<duration>`. */
  readonly arg?: string
  readonly help: string
}

/** The options as `parseArgs` returned them. */
export type OptionValues = Readonly<Record<string, string | boolean | undefined>>

/** A subcommand of `rx-datasync`. */
export interface Command {
  readonly name: string
  /** The usage line after `rx-datasync`, e.g. `get <key> [options]`. */
  readonly usage: string
  /** One line for the command list. */
  readonly summary: string
  /** The help's paragraphs after the usage line. */
  readonly description: string
  /** The command's own options (the store options are added for `store: 'one'`). */
  readonly options: Readonly<Record<string, OptionSpec>>
  /** Whether it takes one store (`--store` and the config flags) or names its own (`mirror`). */
  readonly store: 'one' | 'two'
  readonly positionals: { readonly min: number; readonly max: number; readonly names: string }
  run(
    context: CommandContext,
    values: OptionValues,
    positionals: readonly string[],
  ): Promise<number>
}

/** A string option's value. */
export function stringOption(values: OptionValues, name: string): string | undefined {
  const value = values[name]
  return typeof value === 'string' ? value : undefined
}

/** A boolean option's value. */
export function flag(values: OptionValues, name: string): boolean {
  return values[name] === true
}
