// An AS2 key pair and self-signed certificate (RSA 2048, SHA-256; key usage for signing and key
// transport), made with the machine's openssl. `tsunagi init` and the demo write them; kept if present.
import { execFile } from 'node:child_process';
import { chmod } from 'node:fs/promises';
import { promisify } from 'node:util';
import { pathExists } from '../../spool/atomic.ts';

const run = promisify(execFile);

export async function ensureAs2Certificate(certPath: string, keyPath: string, commonName: string, days = 730): Promise<void> {
  if ((await pathExists(certPath)) && (await pathExists(keyPath))) return;
  await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-sha256', '-nodes',
    '-keyout', keyPath, '-out', certPath, '-days', String(days), '-subj', `/CN=${commonName.replace(/[/=]/g, ' ')}`,
    '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment',
    '-addext', 'basicConstraints=critical,CA:FALSE',
  ]);
  await chmod(keyPath, 0o600);
}
