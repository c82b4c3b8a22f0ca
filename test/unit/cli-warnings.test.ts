import { once } from 'node:events'
import { describe, expect, it } from 'vitest'
import { stderrLine } from '../../src/cli/context.js'
import { captureWarnings } from '../../src/cli/warnings.js'

describe('the command under --json', () => {
  it('routes what libraries print, and process warnings, to the sink until released', async () => {
    const seen: string[] = []
    const before = { warn: console.warn, error: console.error, log: console.log }
    const listeners = process.listeners('warning').length
    const release = captureWarnings((message) => seen.push(message))
    try {
      console.warn('[ioredis] %s', 'a client warning')
      console.error(new Error('boom').message)
      const emitted = once(process, 'warning')
      process.emitWarning('a library is deprecated', 'DeprecationWarning')
      await emitted
      expect(process.listeners('warning')).toHaveLength(1)
    } finally {
      release()
    }
    expect(seen).toEqual([
      '[ioredis] a client warning',
      'boom',
      'DeprecationWarning: a library is deprecated',
    ])
    expect({ warn: console.warn, error: console.error, log: console.log }).toEqual(before)
    expect(process.listeners('warning')).toHaveLength(listeners)
  })

  it('writes stderr lines as JSON objects, plain text otherwise', () => {
    expect(stderrLine(false, 'error', 'redis: get: cannot reach the server', 5)).toBe(
      'rx-datasync: redis: get: cannot reach the server\n',
    )
    expect(stderrLine(false, 'warning', 'value is not UTF-8')).toBe(
      'rx-datasync: warning: value is not UTF-8\n',
    )
    expect(JSON.parse(stderrLine(true, 'error', 'no answer', 5))).toEqual({
      level: 'error',
      message: 'no answer',
      code: 5,
    })
    expect(JSON.parse(stderrLine(true, 'notice', 'in sync again'))).toEqual({
      level: 'notice',
      message: 'in sync again',
    })
  })
})
