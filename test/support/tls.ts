/**
 * Certificates for TLS tests, made with the openssl command line in a temporary directory: a CA,
 * a server certificate for 127.0.0.1 and localhost signed by it, a client certificate signed by
 * it, and a second, unrelated CA (to show that a wrong CA is refused).
 */
import { execFile } from 'node:child_process'
import { readFile, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { makeTempDir } from '../servers/index.js'

const run = promisify(execFile)

export interface TestCertificates {
  /** The directory holding every file; `cleanup` removes it. */
  readonly dir: string
  readonly caFile: string
  readonly serverCertFile: string
  readonly serverKeyFile: string
  readonly clientCertFile: string
  readonly clientKeyFile: string
  /** A CA that signed nothing here. */
  readonly otherCaFile: string
  /** PEM contents by file. */
  pem(file: string): Promise<Buffer>
  cleanup(): Promise<void>
}

async function openssl(dir: string, args: readonly string[]): Promise<void> {
  try {
    await run('openssl', [...args], { cwd: dir })
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? ''
    throw new Error(`openssl ${args.join(' ')} failed: ${stderr}`, { cause: error })
  }
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, ['genrsa', '-out', `${name}.key`, '2048'])
  await openssl(dir, [
    'req',
    '-x509',
    '-new',
    '-key',
    `${name}.key`,
    '-sha256',
    '-days',
    '2',
    '-subj',
    `/CN=rx-datasync test ${name}`,
    '-out',
    `${name}.pem`,
  ])
}

async function makeLeaf(dir: string, name: string, extensions: string): Promise<void> {
  await writeFile(path.join(dir, `${name}.ext`), extensions)
  await openssl(dir, ['genrsa', '-out', `${name}.key`, '2048'])
  await openssl(dir, [
    'req',
    '-new',
    '-key',
    `${name}.key`,
    '-subj',
    `/CN=${name}`,
    '-out',
    `${name}.csr`,
  ])
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-sha256',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.pem`,
  ])
}

/** Generates the certificates (a few hundred milliseconds of openssl). */
export async function makeTestCertificates(): Promise<TestCertificates> {
  const dir = await makeTempDir('tls')
  try {
    await makeCa(dir, 'ca')
    await makeCa(dir, 'other-ca')
    await makeLeaf(
      dir,
      'server',
      [
        'basicConstraints=CA:FALSE',
        'keyUsage=digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth,clientAuth',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '',
      ].join('\n'),
    )
    await makeLeaf(
      dir,
      'client',
      [
        'basicConstraints=CA:FALSE',
        'keyUsage=digitalSignature,keyEncipherment',
        'extendedKeyUsage=clientAuth',
        '',
      ].join('\n'),
    )
  } catch (error) {
    await rm(dir, { recursive: true, force: true })
    throw error
  }
  const file = (name: string) => path.join(dir, name)
  return {
    dir,
    caFile: file('ca.pem'),
    serverCertFile: file('server.pem'),
    serverKeyFile: file('server.key'),
    clientCertFile: file('client.pem'),
    clientKeyFile: file('client.key'),
    otherCaFile: file('other-ca.pem'),
    pem: (name) => readFile(name),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
}
