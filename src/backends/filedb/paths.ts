import { isAbsolute, resolve, sep } from 'node:path'

// Path arithmetic on absolute, resolved paths: no file-system access.

/** `path` lies strictly below the directory `dir` (`dir` itself is not under it). */
export function isUnder(path: string, dir: string): boolean {
  if (!isAbsolute(dir)) return false
  return dir.endsWith(sep)
    ? path.length > dir.length && path.startsWith(dir)
    : path.startsWith(dir + sep)
}

/** The directory holding `path`. */
export function parentOf(path: string): string {
  return resolve(path, '..')
}

/** A dot name (an editor's or a VCS's file): never data. */
export function isHidden(name: string): boolean {
  return name.startsWith('.')
}

/** `file` lies under one of the directories keyed in `dirs`. */
export function underAny(file: string, dirs: ReadonlyMap<string, unknown>): boolean {
  for (const dir of dirs.keys()) if (isUnder(file, dir)) return true
  return false
}

/** `path` is `dir` or lies under it. */
export function isAtOrUnder(path: string, dir: string): boolean {
  return path === dir || isUnder(path, dir)
}
