import { describe, expect, it } from 'vitest'
import { Catalog } from '../../src/backends/filedb/catalog.js'
import { isAtOrUnder, isUnder, parentOf, underAny } from '../../src/backends/filedb/paths.js'
import { Scanner } from '../../src/backends/filedb/scan.js'

// Which paths hold data: path arithmetic only, no disk.

describe('filedb paths', () => {
  it('a path is under a directory only strictly below it, on a name boundary', () => {
    expect(isUnder('/d/a.json', '/d')).toBe(true)
    expect(isUnder('/d/sub/a.json', '/d')).toBe(true)
    expect(isUnder('/d', '/d')).toBe(false)
    expect(isUnder('/dd/a.json', '/d')).toBe(false)
    expect(isUnder('/d/a.json', '/')).toBe(true)
    expect(isUnder('/', '/')).toBe(false)
    expect(isUnder('d/a.json', 'd')).toBe(false)
    expect(isAtOrUnder('/d', '/d')).toBe(true)
    expect(isAtOrUnder('/dd', '/d')).toBe(false)
    expect(parentOf('/d/sub/a.json')).toBe('/d/sub')
    expect(
      underAny(
        '/d/x/a.json',
        new Map([
          ['/e', 1],
          ['/d/x', 2],
        ]),
      ),
    ).toBe(true)
    expect(underAny('/d/a.json', new Map([['/d/x', 2]]))).toBe(false)
  })

  it('data is a configured path, or a data file under a configured directory without a dot name on the way, never the status file', () => {
    const scanner = new Scanner(
      ['/conf.d', '/extra/routes.yaml'],
      '/conf.d/run/status.json',
      new Catalog(() => undefined),
      () => undefined,
    )
    expect(scanner.inData('/conf.d')).toBe(true)
    expect(scanner.inData('/conf.d/a.json')).toBe(true)
    expect(scanner.inData('/conf.d/sub/deeper/b.yml')).toBe(true)
    expect(scanner.inData('/conf.d/.git/config.json')).toBe(false)
    expect(scanner.inData('/conf.d/.a.json.swp')).toBe(false)
    expect(scanner.inData('/conf.d/run/status.json')).toBe(false)
    expect(scanner.inData('/extra/routes.yaml')).toBe(true)
    expect(scanner.inData('/extra/other.yaml')).toBe(false)
    expect(scanner.inData('/conf.dx/a.json')).toBe(false)
    // Directories on the way to a configured path are watched, not read.
    expect(scanner.isAncestor('/extra')).toBe(true)
    expect(scanner.isAncestor('/')).toBe(true)
    expect(scanner.isAncestor('/conf.d')).toBe(false)
    // A data file by its extension; a configured path whatever its name.
    expect(scanner.isDataFile('/conf.d/a.JSON')).toBe(true)
    expect(scanner.isDataFile('/conf.d/notes.txt')).toBe(false)
    expect(scanner.isDataFile('/conf.d')).toBe(true)
  })
})
