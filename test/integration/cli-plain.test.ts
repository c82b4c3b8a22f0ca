/**
 * The command speaking plainly: messages without client internals, --timeout as the bound of the
 * whole command, durations with units, empty stdin refused, --version, ping, "did you mean",
 * keyspace events announced (or only verified), and JSON lines on stderr under --json.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { freePort, redisCommand, startRedis, useServer } from '../servers/index.js'
import { ROOT, cli, jsonLines, launch } from './cli-child.js'

const VERSION = (JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { version: string })
  .version

describe('rx-datasync without a store', () => {
  it('lists --version and ping in its help, and prints the version', async () => {
    const help = await cli(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/^ {2}-v, --version +print the version and exit$/m)
    expect(help.stdout).toMatch(/^ {2}ping +check that the store answers/m)
    expect(await cli(['--version'])).toMatchObject({ code: 0, stdout: `${VERSION}\n` })
  })

  it('suggests the command or option meant', async () => {
    const command = await cli(['gte', 'k'])
    expect(command.code).toBe(2)
    expect(command.stderr).toMatch(/^rx-datasync: unknown command 'gte'; did you mean 'get'\?$/m)
    const help = await cli(['help', 'lst'])
    expect(help.code).toBe(2)
    expect(help.stderr).toContain("did you mean 'list'?")
    const far = await cli(['frobnicate'])
    expect(far.stderr).toContain('the commands are watch, get, put, del, list, mirror')
    const option = await cli(['get', 'k', '--tiemout', '1s'])
    expect(option.code).toBe(2)
    expect(option.stderr).toContain("Unknown option '--tiemout'; did you mean '--timeout'?")
  })

  it('refuses a duration without a unit, and a zero timeout', async () => {
    const bare = await cli(['get', 'k', '--store', 'redis://127.0.0.1:1', '--timeout', '5'])
    expect(bare.code).toBe(2)
    expect(bare.stderr).toContain(
      "--timeout: '5' has no unit; write '5s' for seconds or '5ms' for milliseconds",
    )
    const ttl = await cli(['put', 'k', 'v', '--store', 'redis://127.0.0.1:1', '--ttl', '30'])
    expect(ttl.code).toBe(2)
    expect(ttl.stderr).toContain("--ttl: '30' has no unit")
    const zero = await cli(['get', 'k', '--store', 'redis://127.0.0.1:1', '--timeout', '0'])
    expect(zero.code).toBe(2)
    expect(zero.stderr).toContain('--timeout: expected a duration above 0')
  })

  it('says the server cannot be reached, without the client internals, as JSON under --json', async () => {
    const port = await freePort()
    const store = ['--store', `redis://127.0.0.1:${port}`, '--timeout', '5s']
    const plain = await cli(['get', 'k', ...store])
    expect(plain.code).toBe(5)
    expect(plain.stderr).toBe(
      `rx-datasync: redis: get: cannot reach the server (connect ECONNREFUSED 127.0.0.1:${port}); the command was not sent\n`,
    )
    const json = await cli(['list', '--json', ...store])
    expect(json.code).toBe(5)
    expect(jsonLines(json.stderr)).toEqual([
      {
        level: 'error',
        code: 5,
        message: `redis: list: cannot reach the server (connect ECONNREFUSED 127.0.0.1:${port}); the command was not sent`,
      },
    ])
    const ping = await cli(['ping', ...store])
    expect(ping.code).toBe(5)
    expect(ping.stderr).toContain('cannot reach the server')
  })
})

describe('rx-datasync against a Redis server', () => {
  const redis = useServer(() => startRedis({ notifyKeyspaceEvents: '' }))
  const url = () => `redis://127.0.0.1:${redis().port}/0`

  it('pings: ok with the round trip time, as JSON with --json', async () => {
    const ping = await cli(['ping', '--store', url()])
    expect(ping.code).toBe(0)
    expect(ping.stdout).toMatch(/^redis:\/\/127\.0\.0\.1:\d+\/0: ok in \d+ ms\n$/)
    const json = await cli(['ping', '--json', '--store', url()])
    expect(json.code).toBe(0)
    const [answer] = jsonLines(json.stdout)
    expect(answer).toMatchObject({ store: url(), ok: true })
    expect(typeof answer?.ms).toBe('number')
  })

  it('refuses to write an empty stdin unless --allow-empty', async () => {
    const refused = await cli(['put', 'empty/a', '--store', url()], { stdin: '' })
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain(
      "stdin was empty: refusing to write an empty value to 'empty/a' (--allow-empty writes it)",
    )
    expect(await redisCommand(redis().port, 'EXISTS', 'empty/a')).toBe(0)
    const allowed = await cli(['put', 'empty/a', '--allow-empty', '--store', url()], { stdin: '' })
    expect(allowed.code).toBe(0)
    expect(await redisCommand(redis().port, 'EXISTS', 'empty/a')).toBe(1)
    // A value given as an argument is meant, even when empty.
    expect((await cli(['put', 'empty/b', '', '--store', url()])).code).toBe(0)
  })

  it('--verify-keyspace-events only checks, then a watch sets the classes and says so', async () => {
    const verify = await cli(['watch', 'ks/', '--verify-keyspace-events', '--store', url()])
    expect(verify.code).toBe(4)
    expect(verify.stderr).toContain("the watch also needs the classes 'Kg$xe'")
    expect(await redisCommand(redis().port, 'CONFIG', 'GET', 'notify-keyspace-events')).toEqual([
      'notify-keyspace-events',
      '',
    ])

    const watching = launch(['watch', 'ks/', '--json', '--store', url()])
    const notice = await watching.waitForStderr(/notify-keyspace-events/)
    await watching.waitFor(/"op":"resync"/)
    const finished = await watching.stop()
    expect(finished.code).toBe(0)
    // Under --json, stderr is JSON lines too.
    const parsed = JSON.parse(notice) as { level: string; message: string }
    expect(parsed.level).toBe('notice')
    expect(parsed.message).toMatch(
      /: set notify-keyspace-events on .+ from '' to 'Kg\$xe' \(the watch needs keyspace events; --verify-keyspace-events only checks\)$/,
    )
    const [, flags] = (await redisCommand(
      redis().port,
      'CONFIG',
      'GET',
      'notify-keyspace-events',
    )) as [string, string]
    expect(flags.split('').sort()).toEqual('$Kegx'.split('').sort())
    // Now the classes are there: verifying passes and nothing is announced.
    const again = launch(['watch', 'ks/', '--verify-keyspace-events', '--store', url()])
    await again.waitFor(/^RESYNC /)
    const ended = await again.stop()
    expect(ended.code).toBe(0)
    expect(ended.stderr).toBe('')
  })

  it('ends at --timeout when the server is silent, not at twice it', async () => {
    // What a command costs here without waiting: start-up, loading the client, one answer.
    const answered = await cli(['get', 'silent/a', '--store', url(), '--timeout', '3s'])
    expect(answered.code).toBe(3)
    await redis().pause()
    try {
      for (const command of [
        ['get', 'silent/a'],
        ['watch', 'silent/'],
      ]) {
        const silent = await cli([...command, '--store', url(), '--timeout', '3s'])
        expect(silent.code, command[0]).toBe(5)
        expect(silent.stderr).toMatch(/within 3000 ms \(--timeout\)/)
        expect(silent.elapsedMs, command[0]).toBeGreaterThanOrEqual(3000)
        // Before, closing the store waited for --timeout again.
        expect(silent.elapsedMs, command[0]).toBeLessThan(answered.elapsedMs + 3000 + 2000)
      }
    } finally {
      redis().resume()
    }
  })
})
