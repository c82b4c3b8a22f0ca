/**
 * The example app of examples/browser in headless Chromium (Debian's chromium, installed on
 * demand by the harness, driven by playwright-core): the page shows the ordered resync, each
 * change with its previous and current value, writes a key with write-and-wait, and recovers
 * when the server is cut and restarted. The test saves a screenshot in the OS temp directory.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lastValueFrom } from 'rxjs'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMemoryStore, string, type MemoryStore } from '../../src/index.js'
import { serveStore, type StoreServer } from '../../src/http/index.js'
import { serveApp, type Site } from '../../examples/browser/site.js'
import { ensureBinary, registerBinary } from '../servers/index.js'

registerBinary('chromium', { debianPackage: 'chromium' })

const text = string()
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]
const WAIT_MS = 30_000

describe('the browser example app in Chromium', { timeout: 180_000 }, () => {
  let profile = ''
  let context: BrowserContext | undefined
  let page: Page
  let store: MemoryStore
  let server: StoreServer
  let site: Site

  beforeAll(async () => {
    const executablePath = await ensureBinary('chromium')
    profile = await mkdtemp(join(tmpdir(), 'rx-datasync-chromium-'))
    // A fresh --user-data-dir: playwright passes the profile directory itself.
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: FLAGS,
    })
    page = context.pages()[0] ?? (await context.newPage())
  }, 300_000)

  afterAll(async () => {
    await context?.close()
    await server.close()
    await site.close()
    await store.close()
    await rm(profile, { recursive: true, force: true })
  })

  const put = (key: string, value: string) =>
    lastValueFrom(store.put(key, text.encode(value)), { defaultValue: undefined })
  /** The page's list items of `list`, as their data attributes. */
  const listed = (list: string) =>
    page.$$eval(`#${list} li`, (items) =>
      items.map((li) => Object.fromEntries(Object.entries((li as HTMLElement).dataset))),
    )
  /** The page's table, key to value. */
  const table = () =>
    page.$$eval('#config tr', (rows) =>
      rows.map((row) => Array.from(row.querySelectorAll('td'), (td) => td.textContent)),
    )
  const waitFor = (predicate: string, arg?: unknown) =>
    page.waitForFunction(predicate, arg, { timeout: WAIT_MS })
  const statusIs = (state: string) =>
    waitFor(`document.getElementById('status').dataset.state === ${JSON.stringify(state)}`)

  it('shows the resync in order, then each change with prev and value, writes and waits, and recovers after a server restart', async () => {
    store = createMemoryStore({
      initial: {
        'config/b': text.encode('2'),
        'config/a': text.encode('1'),
        'config/c': text.encode('3'),
      },
    })
    site = await serveApp()
    server = await serveStore(store, { cors: { origins: [site.url] }, heartbeat: '1s' })
    const port = server.port
    await page.goto(`${site.url}/?server=${encodeURIComponent(server.url)}&prefix=config/`)
    await statusIs('ready')
    await waitFor(`document.querySelectorAll('#resync li').length === 3`)
    expect(await listed('resync')).toEqual([
      { key: 'config/a', value: '1' },
      { key: 'config/b', value: '2' },
      { key: 'config/c', value: '3' },
    ])

    await put('config/b', '20')
    await lastValueFrom(store.delete('config/a'))
    await put('config/d', '4')
    await waitFor(`document.querySelectorAll('#changes li[data-kind=change]').length === 3`)
    const changes = (await listed('changes')).filter((item) => item.kind === 'change')
    expect(changes).toEqual([
      { kind: 'change', op: 'put', key: 'config/b', prev: '2', value: '20' },
      { kind: 'change', op: 'delete', key: 'config/a', prev: '1', value: '' },
      { kind: 'change', op: 'put', key: 'config/d', prev: '', value: '4' },
    ])

    // The form writes through the served store and reports once this page applied the write.
    await page.fill('#key', 'config/e')
    await page.fill('#value', 'five')
    await page.click('#write button')
    await waitFor(`document.getElementById('result').dataset.outcome === 'applied'`)
    expect(await page.textContent('#result')).toBe('applied by page')
    expect(text.decode(store.dump().get('config/e')?.value ?? new Uint8Array())).toBe('five')

    // The server goes away; the page says so; writes meanwhile reach it after the restart.
    await server.close()
    await statusIs('degraded')
    await put('config/c', 'thirty')
    await lastValueFrom(store.delete('config/d'))
    server = await serveStore(store, { port, cors: { origins: [site.url] }, heartbeat: '1s' })
    await statusIs('ready')
    const expected = [...store.dump().values()].map((item) => [item.key, text.decode(item.value)])
    await waitFor(
      `JSON.stringify([...document.querySelectorAll('#config tr')].map((row) => [...row.querySelectorAll('td')].map((td) => td.textContent))) === ${JSON.stringify(JSON.stringify(expected))}`,
    )
    expect(await table()).toEqual(expected)

    const screenshot = join(tmpdir(), `rx-datasync-browser-${process.pid}.png`)
    await page.screenshot({ path: screenshot, fullPage: true })
    expect((await stat(screenshot)).size).toBeGreaterThan(1000)
    console.log(`[browser] screenshot: ${screenshot}`)
  })
})
