import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { z } from 'zod'
import { ConfigError } from '../../core/errors.js'
import { durationField, loadConfigFile, type ConfigReadOptions } from '../../internal/config.js'
import type { HttpServerOptions } from './options.js'

const prefixes = z.array(z.string())

const fileSchema = z.strictObject({
  port: z.number().int().min(0).max(65_535).optional(),
  host: z.string().min(1).optional(),
  prefixes: prefixes.optional(),
  tls: z
    .strictObject({
      'cert-file': z.string().min(1),
      'key-file': z.string().min(1),
      'ca-file': z.string().min(1).optional(),
      'request-cert': z.boolean().optional(),
    })
    .optional(),
  tokens: z
    .record(
      z.string().min(1),
      z.strictObject({ read: prefixes.optional(), write: prefixes.optional() }),
    )
    .optional(),
  cors: z
    .strictObject({
      origins: z.union([z.literal('*'), z.array(z.string().min(1))]),
      'max-age': durationField.optional(),
    })
    .optional(),
  'max-body-bytes': z.number().int().positive().optional(),
  'max-clients': z.number().int().nonnegative().optional(),
  'max-buffered-bytes': z.number().int().positive().optional(),
  'history-size': z.number().int().nonnegative().optional(),
  'snapshot-chunk': z.number().int().positive().optional(),
  heartbeat: durationField.optional(),
  'sync-wait': durationField.optional(),
})

/**
 * Reads the server's YAML (or JSON) configuration file for `rx-datasync serve` (the format is in
 * src/http/README.md). Errors name the file, the line and the field; TLS files are read
 * relative to the configuration file.
 *
 * @throws ConfigError naming the file (and line and field) when it is missing or wrong.
 */
export async function loadHttpServerConfig(
  file: string,
  options: ConfigReadOptions = {},
): Promise<HttpServerOptions> {
  const config = await loadConfigFile(file, fileSchema, options)
  const read = async (field: string, path: string) => {
    const full = resolve(dirname(file), path)
    try {
      return await readFile(full)
    } catch (error) {
      throw new ConfigError(
        file,
        field,
        `cannot read ${full} (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
        {
          cause: error,
        },
      )
    }
  }
  const tls = config.tls
  return {
    ...(config.port === undefined ? {} : { port: config.port }),
    ...(config.host === undefined ? {} : { host: config.host }),
    ...(config.prefixes === undefined ? {} : { prefixes: config.prefixes }),
    ...(tls === undefined
      ? {}
      : {
          tls: {
            cert: await read('tls.cert-file', tls['cert-file']),
            key: await read('tls.key-file', tls['key-file']),
            ...(tls['ca-file'] === undefined
              ? {}
              : { ca: await read('tls.ca-file', tls['ca-file']) }),
            ...(tls['request-cert'] === undefined ? {} : { requestCert: tls['request-cert'] }),
          },
        }),
    ...(config.tokens === undefined
      ? {}
      : {
          tokens: Object.fromEntries(
            Object.entries(config.tokens).map(([token, grant]) => [
              token,
              {
                ...(grant.read ? { read: grant.read } : {}),
                ...(grant.write ? { write: grant.write } : {}),
              },
            ]),
          ),
        }),
    ...(config.cors === undefined
      ? {}
      : {
          cors: {
            origins: config.cors.origins,
            ...(config.cors['max-age'] === undefined ? {} : { maxAge: config.cors['max-age'] }),
          },
        }),
    ...(config['max-body-bytes'] === undefined ? {} : { maxBodyBytes: config['max-body-bytes'] }),
    ...(config['max-clients'] === undefined ? {} : { maxClients: config['max-clients'] }),
    ...(config['max-buffered-bytes'] === undefined
      ? {}
      : { maxBufferedBytes: config['max-buffered-bytes'] }),
    ...(config['history-size'] === undefined ? {} : { historySize: config['history-size'] }),
    ...(config['snapshot-chunk'] === undefined ? {} : { snapshotChunk: config['snapshot-chunk'] }),
    ...(config.heartbeat === undefined ? {} : { heartbeat: config.heartbeat }),
    ...(config['sync-wait'] === undefined ? {} : { syncWait: config['sync-wait'] }),
  }
}
