/// <reference lib="dom" />
// The browser app of examples/browser: a live configuration from a store served over HTTP. It
// shows the ordered resync, then each change with its previous and current value, the
// connection status, and a form that writes a key and waits until this page has applied it
// (write-and-wait with the orchestrator's commit). RxJS only, no framework; bundled by esbuild.
import { combineLatest, lastValueFrom } from 'rxjs'
import { createDatasync, string, type ConsumerEvent } from 'rx-datasync'
import { createHttpStore } from 'rx-datasync/http-client'

const params = new URLSearchParams(location.search)
const server = params.get('server') ?? 'http://127.0.0.1:8080'
const prefix = params.get('prefix') ?? 'config/'
const token = params.get('token') ?? undefined

const text = string()
const store = createHttpStore(server, {
  reconnectInterval: '1s',
  ...(token === undefined ? {} : { token }),
})
const sync = createDatasync(store, { ackTimeout: '10s' })
const config = sync.register('page', { prefixes: [prefix], codec: text })

function element(id: string): HTMLElement {
  const found = document.getElementById(id)
  if (found === null) throw new Error(`index.html has no element #${id}`)
  return found
}
const statusView = element('status')
const resyncView = element('resync') as HTMLOListElement
const changesView = element('changes') as HTMLOListElement
const tableView = element('config')
const resultView = element('result')
element('watched').textContent = `${prefix} on ${server}`

const current = new Map<string, string>()

function item(list: HTMLElement, text: string, data: Record<string, string>): void {
  const li = document.createElement('li')
  li.textContent = text
  for (const [name, value] of Object.entries(data)) li.dataset[name] = value
  list.append(li)
}

function renderTable(): void {
  tableView.replaceChildren(
    ...[...current].map(([key, value]) => {
      const row = document.createElement('tr')
      row.dataset.key = key
      for (const cell of [key, value]) {
        const td = document.createElement('td')
        td.textContent = cell
        row.append(td)
      }
      return row
    }),
  )
}

function apply(event: ConsumerEvent<string>): void {
  if (event.kind === 'resync') {
    current.clear()
    resyncView.replaceChildren()
    for (const { key, value } of event.items) {
      current.set(key, value)
      item(resyncView, `${key} = ${value}`, { key, value })
    }
    item(changesView, `resync (${event.reason}) @${event.revision}: ${event.items.length} keys`, {
      kind: 'resync',
      reason: event.reason,
    })
  } else {
    for (const change of event.changes) {
      const prev = change.prev ?? ''
      if (change.op === 'put') current.set(change.key, change.value)
      else current.delete(change.key)
      const now = change.op === 'put' ? change.value : '(deleted)'
      item(
        changesView,
        `${change.op} ${change.key}: ${prev || '(none)'} → ${now} @${change.revision}`,
        {
          kind: 'change',
          op: change.op,
          key: change.key,
          prev,
          value: change.op === 'put' ? change.value : '',
        },
      )
    }
  }
  renderTable()
  event.done()
}

config.events$.subscribe(apply)

combineLatest([store.status$, sync.status$]).subscribe(([connection, syncing]) => {
  statusView.textContent = `${connection.state} / ${syncing.state}`
  statusView.dataset.state = connection.state
  statusView.title = connection.error?.message ?? ''
})

element('write').addEventListener('submit', (submitted) => {
  submitted.preventDefault()
  const key = (element('key') as HTMLInputElement).value
  const value = (element('value') as HTMLInputElement).value
  resultView.textContent = 'writing…'
  lastValueFrom(sync.commit([{ op: 'put', key, value: text.encode(value) }], { timeout: '10s' }))
    .then((result) => {
      resultView.textContent = result.succeeded
        ? `applied by ${result.consumers.map((outcome) => outcome.consumer).join(', ') || 'nobody'}`
        : 'not written'
      resultView.dataset.outcome = result.succeeded ? 'applied' : 'refused'
    })
    .catch((error: unknown) => {
      resultView.textContent = `failed: ${error instanceof Error ? error.message : String(error)}`
      resultView.dataset.outcome = 'failed'
    })
})

sync.start()
