#!/usr/bin/env node
// postinstall: ssh2 1.17 gives every channel a fixed 2 MiB receive window and tops it up only when
// half is used, so an OpenSSH client uploading to our SFTP server waits on window adjustments:
// measured 82 MiB/s with 2 MiB, 197 MiB/s with 16 MiB (256 MiB put, loopback). ssh2 has no option
// for it, so we raise the constant in place. Idempotent; fails loudly if ssh2 changed shape.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const channelJs = path.join(path.dirname(require.resolve('ssh2/package.json')), 'lib', 'Channel.js');
const ORIGINAL = 'const MAX_WINDOW = 2 * 1024 * 1024;';
const PATCHED = 'const MAX_WINDOW = 16 * 1024 * 1024; // raised by tsunagi scripts/patch-dependencies.js';

const source = readFileSync(channelJs, 'utf8');
if (source.includes(PATCHED)) process.exit(0);
if (!source.includes(ORIGINAL)) {
  console.error(`patch-dependencies: ${channelJs} has no '${ORIGINAL}'; check the ssh2 version`);
  process.exit(1);
}
writeFileSync(channelJs, source.replace(ORIGINAL, PATCHED));
console.log('patch-dependencies: ssh2 channel window raised to 16 MiB');
