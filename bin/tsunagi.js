#!/usr/bin/env node
// The CLI is TypeScript run through tsx; no build step, so a fresh clone works after `npm ci`.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../scripts/cli.ts');
process.exitCode = await main(process.argv.slice(2));
