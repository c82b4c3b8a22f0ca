#!/usr/bin/env node
// The `rx-datasync` command. In a source checkout (tsconfig.json beside src/) it runs the
// TypeScript source through tsx, so it works without a build; in an installed package it runs
// the build, dist/cli/main.js. RX_DATASYNC_CLI=source or RX_DATASYNC_CLI=dist forces one.
import { existsSync } from 'node:fs'

const root = new URL('../', import.meta.url)
const dist = new URL('dist/cli/main.js', root)
const source = new URL('src/cli/main.ts', root)
const forced = process.env.RX_DATASYNC_CLI
const fromSource =
  forced === 'source' ||
  (forced !== 'dist' && existsSync(new URL('tsconfig.json', root)) && existsSync(source))

if (fromSource) {
  let tsx
  try {
    tsx = await import('tsx/esm/api')
  } catch {
    process.stderr.write(
      'rx-datasync: running the TypeScript source needs tsx (npm install); or build with `npm run build`\n',
    )
    process.exit(1)
  }
  tsx.register()
  await import(source.href)
} else if (existsSync(dist)) {
  await import(dist.href)
} else {
  process.stderr.write(
    `rx-datasync: ${dist.pathname} is missing; build it with \`npm run build\`\n`,
  )
  process.exit(1)
}
