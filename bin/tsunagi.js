#!/usr/bin/env node
// The CLI is TypeScript run through tsx; no build step, so a fresh clone works after `npm ci`.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../scripts/cli.ts');
process.exitCode = await main(process.argv.slice(2));
// A command that has finished must not be kept alive by a library's stray timer or socket (ioredis
// reconnecting after an outage, say): everything of ours is closed by now.
setTimeout(() => process.exit(), 5000).unref();
