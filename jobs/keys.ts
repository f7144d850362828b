// Keys and certificates a new centre needs: the SSH host key of our SFTP server, key pairs for
// SFTP clients, and a self-signed certificate for FTPS (openssl, from the machine's packages).
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import ssh2 from 'ssh2';
import { pathExists } from '../spool/atomic.ts';

const run = promisify(execFile);


/** An ed25519 key pair in OpenSSH format: PATH (private, mode 600) and PATH.pub. Kept if present. */
export async function ensureSshKeyPair(privatePath: string, comment: string): Promise<{ privatePath: string; publicLine: string }> {
  if (!(await pathExists(privatePath))) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment });
    await writeFile(privatePath, pair.private, { mode: 0o600 });
    await writeFile(`${privatePath}.pub`, `${pair.public}\n`);
  }
  return { privatePath, publicLine: (await readFile(`${privatePath}.pub`, 'utf8')).trim() };
}

/** A self-signed certificate for 127.0.0.1/localhost (FTPS, 全銀 TLS); kept if present. */
export async function ensureSelfSignedCert(certPath: string, keyPath: string, commonName = 'localhost'): Promise<void> {
  if ((await pathExists(certPath)) && (await pathExists(keyPath))) return;
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyPath, '-out', certPath, '-days', '825', '-subj', `/CN=${commonName}`,
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
}

/** A known_hosts line for a server on a port ("[host]:port type base64"). */
export function knownHostsLine(host: string, port: number, publicLine: string): string {
  const [type, b64] = publicLine.split(/\s+/);
  return `${port === 22 ? host : `[${host}]:${port}`} ${type} ${b64}\n`;
}
