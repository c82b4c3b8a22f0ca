import { DatasyncError, UnavailableError, describe } from '../../core/errors.js'
import { inOperation, type ErrorMapper } from '../../internal/errors.js'

/** The backend's name, in messages and errors. */
export const NAME = 'filedb'

/** What a file-system error means to a user, by code; the default covers the rest. */
const FS_ERRORS: Readonly<Record<string, string>> = {
  EACCES: 'permission denied; give the process read access',
  EPERM: 'operation not permitted; give the process read access',
  EISDIR: 'it is a directory where a file was expected',
  ELOOP: 'too many symbolic links (a link loop?)',
  EMFILE: 'too many open files in this process',
  ENFILE: 'too many open files in the system',
  EIO: 'input/output error',
  ENOSPC: 'no space left on the device (or the inotify watch limit is reached)',
  EROFS: 'the file system is read-only',
}

/**
 * The backend's error table: a raw error met doing `what` (`/etc/conf.d/a.json: cannot read the
 * file`) becomes an `UnavailableError` whose message is `what`, the error code and what it
 * means. A `DatasyncError` passes through. No file-system error reaches beyond the one
 * operation that met it: a file that cannot be read keeps its last good keys.
 */
export const toDatasyncError: ErrorMapper = (raw, what) => {
  if (raw instanceof DatasyncError) return inOperation(raw)
  const code = (raw as NodeJS.ErrnoException | undefined)?.code
  const meaning = code === undefined ? describe(raw) : (FS_ERRORS[code] ?? describe(raw))
  return inOperation(
    new UnavailableError(NAME, `${what}${code === undefined ? '' : ` (${code})`}: ${meaning}`, {
      cause: raw,
    }),
  )
}

/** {@link toDatasyncError} for an error met doing `action` on `path`. */
export function fsError(path: string, action: string, raw: unknown): DatasyncError {
  return toDatasyncError(raw, `${path}: cannot ${action}`).error
}
