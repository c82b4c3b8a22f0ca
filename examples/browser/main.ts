// `npm run example:browser`: a memory store with a few keys, served over HTTP with CORS for the
// app's origin, and the app itself on a second port. Open the printed URL; change keys with the
// form, or from a shell:
//   RX_DATASYNC_HTTP_TOKEN= npx rx-datasync put config/colour red --store http://127.0.0.1:8080
import { createMemoryStore, string } from 'rx-datasync'
import { serveStore } from 'rx-datasync/http'
import { serveApp } from './site.js'

const text = string()
const store = createMemoryStore({
  initial: {
    'config/colour': text.encode('blue'),
    'config/limit': text.encode('10'),
    'config/title': text.encode('Hello'),
  },
})
const site = await serveApp(Number(process.env.APP_PORT ?? 5173))
const server = await serveStore(store, {
  port: Number(process.env.STORE_PORT ?? 8080),
  cors: { origins: [site.url] },
})
console.log(`store served at ${server.url}`)
console.log(`open ${site.url}/?server=${encodeURIComponent(server.url)}&prefix=config/`)
process.once('SIGINT', () => {
  void Promise.all([site.close(), server.close(), store.close()]).then(() => process.exit(0))
})
