import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../src/core/errors.js'
import { parseDataFile } from '../../src/backends/filedb/format.js'

const decoder = new TextDecoder()

/** Each key's served text. */
function values(path: string, text: string): Record<string, string> {
  const parsed = parseDataFile(path, text)
  return Object.fromEntries(
    [...parsed.entries].map(([key, entry]) => [key, decoder.decode(entry.value)]),
  )
}

function failure(path: string, text: string): ConfigError {
  try {
    parseDataFile(path, text)
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
  throw new Error('expected a ConfigError')
}

describe('FileDB data files (js-yaml)', () => {
  it('reads YAML 1.2 core values as JSON would: no dates, no yes/no booleans', () => {
    const text = [
      'data:',
      '  - key: a',
      '    value: { when: 2024-01-02, flag: yes, on: true, n: 0x10, f: 1.5e3, nothing: ~ }',
      '  - key: b',
      '    text: "kept as is\\n"',
    ].join('\n')
    expect(values('d.yaml', text)).toEqual({
      a: '{"when":"2024-01-02","flag":"yes","on":true,"n":16,"f":1500,"nothing":null}',
      b: 'kept as is\n',
    })
    expect(values('d.json', JSON.stringify({ data: [{ key: 'a', value: [1, 'x'] }] }))).toEqual({
      a: '[1,"x"]',
    })
  })

  it('names the file and the line of a syntax error, from js-yaml’s mark', () => {
    const error = failure('conf.d/routes.yaml', 'data:\n  - key: a\n    value: [1, 2\n  - key: b\n')
    expect(error.message).toMatch(/^conf\.d\/routes\.yaml:\d+: not valid YAML: /)
    expect(error.message).not.toContain('\n')
    const duplicate = failure('dup.yaml', 'data:\n  - key: a\n    key: b\n    value: 1\n')
    expect(duplicate.message).toMatch(/^dup\.yaml:3: not valid YAML: duplicated mapping key/)
  })

  it('names the line and field of a wrong entry, and of a key given twice', () => {
    const text = 'data:\n  - key: a\n    value: 1\n  - key: b\n    valeu: 2\n'
    expect(failure('x.yml', text).message).toBe(
      "x.yml:5: field 'data[1].valeu': unknown field; an entry has 'key' and either 'value' or 'text'",
    )
    const twice = parseDataFile(
      't.yaml',
      'data:\n  - key: a\n    value: 1\n  - key: a\n    value: 2\n',
    )
    expect(twice.warnings.map((w) => w.message)).toEqual([
      "t.yaml:4: key 'a' is defined more than once in this file; the first definition is used",
    ])
    expect(values('t.yaml', 'data:\n  - key: a\n    value: 1\n  - key: a\n    value: 2\n')).toEqual(
      { a: '1' },
    )
  })

  it('expands aliases, but refuses a file that nests them without bound', () => {
    const ok = 'data:\n  - key: a\n    value: &v { via: x }\n  - key: b\n    value: *v\n'
    expect(values('a.yaml', ok)).toEqual({ a: '{"via":"x"}', b: '{"via":"x"}' })
    const laughs = [
      'data:',
      '  - key: a',
      '    value:',
      '      l0: &l0 [x, x, x, x, x, x, x, x, x]',
      ...Array.from(
        { length: 8 },
        (_, i) => `      l${i + 1}: &l${i + 1} [${Array(9).fill(`*l${i}`).join(', ')}]`,
      ),
    ].join('\n')
    expect(failure('laughs.yaml', laughs).message).toMatch(
      /^laughs\.yaml: not valid YAML: .*alias/i,
    )
  })
})
