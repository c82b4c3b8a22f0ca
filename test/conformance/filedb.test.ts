import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createFileStore } from '../../src/backends/filedb/index.js'
import { fileWriter } from './file-writer.js'
import { describeStore } from './suite.js'

/**
 * The inotify watches this process holds (Linux): what chokidar's fs.watch calls hold open. A
 * watch released is an inotify watch removed.
 */
async function inotifyWatches(): Promise<number> {
  let count = 0
  for (const fd of await readdir('/proc/self/fdinfo')) {
    const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8').catch(() => '')
    for (const line of info.split('\n')) if (line.startsWith('inotify wd:')) count++
  }
  return count
}

describeStore('filedb', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'filedb-conformance-'))
  const data = join(dir, 'data')
  await mkdir(data)
  // settle 0: the writer replaces files atomically, so there is nothing half-written to wait out.
  const store = createFileStore({ paths: [data], settle: 0 })
  return {
    store,
    writer: fileWriter(store, data),
    ...(process.platform === 'linux' ? { activeWatches: inotifyWatches } : {}),
    close: async () => {
      await store.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
})
