#!/usr/bin/env node
// The CLI is TypeScript with no build step, so a fresh clone works after `npm ci`: the first run
// bundles it (jobs/runners/bundle.js, about a second; again only when a source changes) and later
// runs load the bundle as plain JavaScript, without tsx's loader thread and per-module compilation
// (about 40 MB less). If bundling fails, the CLI runs through tsx as before.
import { fileURLToPath } from 'node:url';
import { importBundled } from '../jobs/runners/bundle.js';
const cli = fileURLToPath(new URL('../scripts/cli.ts', import.meta.url));
const { main } = process.env.TSUNAGI_CLI_TSX === '1' ? await import('tsx/esm/api').then(({ register }) => (register(), import(cli))) : await importBundled(cli, 'cli');
process.exitCode = await main(process.argv.slice(2));
// A command that has finished must not be kept alive by a library's stray timer or socket (ioredis
// reconnecting after an outage, say): everything of ours is closed by now.
setTimeout(() => process.exit(), 5000).unref();
