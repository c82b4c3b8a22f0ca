import { firstValueFrom } from 'rxjs'
import { loadHttpServerConfig } from '../../http/server/config.js'
import type { HttpServerOptions } from '../../http/server/options.js'
import { serveStore } from '../../http/server/server.js'
import { flag, stringOption, type Command } from '../command.js'
import { EXIT, UsageError } from '../errors.js'

/** `rx-datasync serve [options]` */
export const serve: Command = {
  name: 'serve',
  usage: 'serve [options]',
  summary: 'serve a store over HTTP (REST and a resumable SSE watch) until interrupted',
  description: [
    'Serves the store over HTTP(S) until SIGINT or SIGTERM (exit code 0): REST calls and',
    'watches as Server-Sent Events, fanned out from one watch of the store. Clients use',
    "createHttpStore from 'rx-datasync/http-client', or any command of this tool with",
    '--store http://host:port. For example:',
    '',
    '  rx-datasync serve --store etcd://127.0.0.1:2379 --port 8080',
    '  rx-datasync serve --store etcd --etcd-config etcd.yaml --http-config http.yaml',
    '',
    'The --http-config file (YAML or JSON) sets port, host, prefixes, tls (cert-file, key-file,',
    'ca-file, request-cert), tokens (token: {read: [prefixes], write: [prefixes]}), cors',
    '(origins, max-age), max-body-bytes, max-clients, max-buffered-bytes, history-size,',
    'snapshot-chunk, heartbeat and sync-wait; --port, --host and --prefixes override it.',
    'Prints "SERVING <store> at <url>" once listening.',
  ].join('\n'),
  options: {
    'http-config': { type: 'string', arg: '<file>', help: "the server's configuration file" },
    port: { type: 'string', arg: '<port>', help: 'the TCP port (default 0: a free one)' },
    host: {
      type: 'string',
      arg: '<address>',
      help: 'the address to listen on (default 127.0.0.1)',
    },
    prefixes: {
      type: 'string',
      arg: '<a/,b/>',
      help: 'serve only keys under these comma-separated prefixes (default everything)',
    },
  },
  store: 'one',
  positionals: { min: 0, max: 0, names: '' },
  async run(context, values) {
    const configFile = stringOption(values, 'http-config')
    let options: HttpServerOptions = {}
    if (configFile !== undefined) {
      options = await loadHttpServerConfig(configFile, {
        expandEnv: flag(values, 'expand-env'),
        env: context.io.env,
      })
    }
    const port = stringOption(values, 'port')
    if (port !== undefined) {
      if (!/^\d{1,5}$/.test(port) || Number(port) > 65_535) {
        throw new UsageError(`--port: expected a port from 0 to 65535, got '${port}'`, 'serve')
      }
      options = { ...options, port: Number(port) }
    }
    const host = stringOption(values, 'host')
    if (host !== undefined) options = { ...options, host }
    const prefixes = stringOption(values, 'prefixes')
    if (prefixes !== undefined) options = { ...options, prefixes: prefixes.split(',') }
    const { store, label } = await context.open(context.storeSpec())
    const server = await serveStore(store, options)
    context.out(`SERVING ${label} at ${server.url}`)
    await firstValueFrom(context.io.signals)
    await server.close()
    return EXIT.ok
  },
}
