/**
 * NATS credentials for tests, made with the nkeys library the client already brings (`nsc` is not
 * on this machine): an nkey user for a server's `authorization` block, and a decentralized
 * (operator mode) set-up: operator, account and user JWTs, signed as nats-server checks them,
 * the server configuration that trusts the operator (a memory resolver preloaded with the
 * account), and the user's `.creds` file.
 *
 * A NATS JWT is `base64url(header).base64url(claims).base64url(ed25519 signature)`, the header
 * `{"typ":"JWT","alg":"ed25519-nkey"}`, signed by the issuer's nkey; the claims name the issuer
 * (`iss`), the subject (`sub`, a public nkey) and the `nats` section of the type (version 2).
 */
import { createHash } from 'node:crypto'
import { createAccount, createOperator, createUser, type KeyPair } from '@nats-io/nkeys'

const text = new TextDecoder()

/** An nkey user: its seed (what the client signs with) and the server's configuration for it. */
export interface NkeyUser {
  readonly seed: string
  readonly publicKey: string
  /** An `authorization` block admitting only this user (nats-server's format). */
  readonly serverConfig: string
}

export function nkeyUser(): NkeyUser {
  const user = createUser()
  const publicKey = user.getPublicKey()
  return {
    seed: text.decode(user.getSeed()),
    publicKey,
    serverConfig: `authorization {\n  users: [ { nkey: ${JSON.stringify(publicKey)} } ]\n}`,
  }
}

/** An operator-mode set-up with one account (JetStream enabled) and one user in it. */
export interface OperatorSetup {
  /** `operator`, `resolver: MEMORY` and `resolver_preload` for the server. */
  readonly serverConfig: string
  /** The user's `.creds` file: its JWT and its seed. */
  readonly creds: string
  /** A `.creds` file of a user signed by an account the server does not know. */
  readonly strangerCreds: string
}

export function operatorSetup(): OperatorSetup {
  const operator = createOperator()
  const system = createAccount()
  const account = createAccount()
  const user = createUser()
  const operatorJwt = sign(operator, operator, 'test-operator', {
    type: 'operator',
    version: 2,
    system_account: system.getPublicKey(),
  })
  const accountClaims = (jetstream: boolean) => ({
    type: 'account',
    version: 2,
    limits: {
      subs: -1,
      data: -1,
      payload: -1,
      imports: -1,
      exports: -1,
      wildcards: true,
      conn: -1,
      leaf: -1,
      ...(jetstream
        ? { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 }
        : { mem_storage: 0, disk_storage: 0, streams: 0, consumer: 0 }),
    },
    default_permissions: { pub: {}, sub: {} },
  })
  const systemJwt = sign(operator, system, 'SYS', accountClaims(false))
  const accountJwt = sign(operator, account, 'app', accountClaims(true))
  const userJwt = sign(account, user, 'app-user', userClaims())
  const stranger = createAccount()
  const strangerUser = createUser()
  const strangerJwt = sign(stranger, strangerUser, 'stranger', userClaims())
  return {
    serverConfig: [
      `operator: ${JSON.stringify(operatorJwt)}`,
      `system_account: ${JSON.stringify(system.getPublicKey())}`,
      `resolver: MEMORY`,
      `resolver_preload: {`,
      `  ${system.getPublicKey()}: ${JSON.stringify(systemJwt)}`,
      `  ${account.getPublicKey()}: ${JSON.stringify(accountJwt)}`,
      `}`,
    ].join('\n'),
    creds: credsFile(userJwt, user),
    strangerCreds: credsFile(strangerJwt, strangerUser),
  }
}

function userClaims(): Record<string, unknown> {
  return { type: 'user', version: 2, pub: {}, sub: {}, subs: -1, data: -1, payload: -1 }
}

/** A JWT of `subject` issued (signed) by `issuer`, with the `nats` claims given. */
function sign(
  issuer: KeyPair,
  subject: KeyPair,
  name: string,
  nats: Record<string, unknown>,
): string {
  const claims: Record<string, unknown> = {
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name,
    sub: subject.getPublicKey(),
    nats,
  }
  // The JWT id: a hash of the claims without it (what the NATS tools do; the server does not
  // check it, but keeps it unique).
  claims.jti = createHash('sha256').update(JSON.stringify(claims)).digest('base64url')
  const header = base64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }))
  const body = base64url(JSON.stringify(claims))
  const signature = Buffer.from(issuer.sign(new TextEncoder().encode(`${header}.${body}`)))
  return `${header}.${body}.${signature.toString('base64url')}`
}

function base64url(json: string): string {
  return Buffer.from(json, 'utf8').toString('base64url')
}

/** The `.creds` format the NATS tools write and the client reads. */
function credsFile(jwt: string, user: KeyPair): string {
  return [
    '-----BEGIN NATS USER JWT-----',
    jwt,
    '------END NATS USER JWT------',
    '',
    '************************* IMPORTANT *************************',
    'NKEY Seed printed below can be used to sign and prove identity.',
    'NKEYs are sensitive and should be treated as secrets.',
    '',
    '-----BEGIN USER NKEY SEED-----',
    text.decode(user.getSeed()),
    '------END USER NKEY SEED------',
    '',
    '*************************************************************',
    '',
  ].join('\n')
}
