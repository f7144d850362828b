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

function patch(file, original, patched, what) {
  const source = readFileSync(file, 'utf8');
  if (source.includes(patched)) return;
  if (!source.includes(original)) {
    console.error(`patch-dependencies: ${file} has no '${original}'; check the ssh2 version`);
    process.exit(1);
  }
  writeFileSync(file, source.replace(original, patched));
  console.log(`patch-dependencies: ${what}`);
}

patch(channelJs, ORIGINAL, PATCHED, 'ssh2 channel window raised to 16 MiB');

// ssh2 1.17's server announces server-sig-algs with a comma missing ("...nistp521rsa-sha2-512")
// and offers ssh-rsa (SHA-1) and ssh-dss: OpenSSH clients then cannot tell that rsa-sha2-* is
// accepted. We announce only what our SFTP server accepts for user keys (PCI DSS 4.2.1).
const protocolJs = path.join(path.dirname(require.resolve('ssh2/package.json')), 'lib', 'protocol', 'Protocol.js');
patch(
  protocolJs,
  `'ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521'
      + 'rsa-sha2-512,rsa-sha2-256,ssh-rsa,ssh-dss';`,
  `'ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,' // patched by tsunagi
      + 'rsa-sha2-512,rsa-sha2-256';`,
  'ssh2 server-sig-algs fixed (comma) and limited to SHA-2 signatures',
);
