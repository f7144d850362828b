// Test helpers for real OpenSSH peers: key generation with ssh-keygen, and an sshd of our own on a
// loopback port for a test user (tests run as root). Per the known traps: useradd leaves the
// account locked, so the password field is set to '*', and sshd runs with its own config file.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

export const run = promisify(execFile);

export const SSHD = '/usr/sbin/sshd';

export function hasCommand(name: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => existsSync(path.join(d, name))) || existsSync(name);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`port ${port} did not open within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface KeyPair {
  privatePath: string;
  publicLine: string;
}

/** An unencrypted ed25519 key pair made by ssh-keygen. */
export async function sshKeygen(dir: string, name: string, type = 'ed25519'): Promise<KeyPair> {
  const privatePath = path.join(dir, name);
  await run('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `${name}@tsunagi-test`, '-f', privatePath]);
  return { privatePath, publicLine: (await readFile(`${privatePath}.pub`, 'utf8')).trim() };
}

/** A known_hosts line for a server on 127.0.0.1:port with the given public key line. */
export function knownHostsLine(port: number, publicLine: string): string {
  const [type, b64] = publicLine.split(/\s+/);
  return `[127.0.0.1]:${port} ${type} ${b64}\n`;
}

export interface TestSshd {
  port: number;
  user: string;
  /** The test user's home, owned by the user; uploads land here. */
  home: string;
  hostPublicLine: string;
  /** A known_hosts file that trusts this sshd. */
  knownHosts: string;
  stop(): Promise<void>;
}

const TEST_USER = 'tsunagitest';

/**
 * The account is made once and never changed again: two test runs on one machine share it, so
 * each sshd starts its user in its own folder (`internal-sftp -d`) instead of moving the account's
 * home, which the other run's sshd would then follow.
 */
async function ensureUser(user: string): Promise<{ uid: number; gid: number }> {
  const ids = async () => ({
    uid: Number((await run('id', ['-u', user])).stdout.trim()),
    gid: Number((await run('id', ['-g', user])).stdout.trim()),
  });
  try {
    return await ids();
  } catch {
    try {
      await run('useradd', ['--no-create-home', '--home-dir', '/', '--shell', '/bin/sh', '--password', '*', user]);
    } catch (err) {
      // Another run may have made it at the same moment; only a still-missing user is an error.
      return ids().catch(() => Promise.reject(err));
    }
    return ids();
  }
}

/** Starts sshd on a free loopback port; the test user logs in with `authorizedKeys`. */
export async function startSshd(authorizedKeys: string[], options: { user?: string } = {}): Promise<TestSshd> {
  const user = options.user ?? TEST_USER;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-sshd-'));
  await chmod(dir, 0o755);
  const home = path.join(dir, 'home');
  await mkdir(home);
  const { uid, gid } = await ensureUser(user);
  await chown(home, uid, gid);
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });

  const hostKey = path.join(dir, 'host_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  const hostPublicLine = (await readFile(`${hostKey}.pub`, 'utf8')).trim();
  const authorized = path.join(dir, 'authorized_keys');
  await writeFile(authorized, authorizedKeys.join('\n') + '\n', { mode: 0o644 });

  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      `AuthorizedKeysFile ${authorized}`,
      'StrictModes no',
      `AllowUsers ${user}`,
      `Subsystem sftp internal-sftp -d ${home}`,
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  const knownHosts = path.join(dir, 'known_hosts');
  await writeFile(knownHosts, knownHostsLine(port, hostPublicLine));

  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([waitForPort(port), exited.then(() => Promise.reject(new Error(`sshd exited: ${stderr}`)))]);
  } catch (err) {
    child.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    user,
    home,
    hostPublicLine,
    knownHosts,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---- The centre side of listener tests: a spool tree, a SQLite ledger, a quiet logger. ----------
import pino from 'pino';
import { SpoolTree } from '../../spool/tree.ts';
import { openLedger, type Ledger } from '../../spool/ledger/index.ts';
import type { ListenerContext } from '../../protocols/contract.ts';

export interface TestCentre {
  dir: string;
  spool: SpoolTree;
  ledger: Ledger;
  ctx: ListenerContext;
  landed: Array<{ partnerId: string; finalPath: string }>;
  pickedUp: Array<{ partnerId: string; fileName: string; bytes: number }>;
  cleanup(): Promise<void>;
}

export async function makeCentre(partnerIds: string[]): Promise<TestCentre> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-centre-'));
  const spool = new SpoolTree(path.join(dir, 'spool'));
  await spool.ensure(partnerIds);
  const ledger = await openLedger(`sqlite:${path.join(dir, 'ledger.db')}`);
  const landed: TestCentre['landed'] = [];
  const pickedUp: TestCentre['pickedUp'] = [];
  const ctx: ListenerContext = {
    spool,
    ledger,
    log: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    onLanded: (partnerId, finalPath) => void landed.push({ partnerId, finalPath }),
    onPickedUp: (partnerId, fileName, bytes) => void pickedUp.push({ partnerId, fileName, bytes }),
  };
  return {
    dir,
    spool,
    ledger,
    ctx,
    landed,
    pickedUp,
    async cleanup() {
      await ledger.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` passes (servers record audit rows asynchronously). */
export async function eventually(check: () => Promise<void> | void, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Some real card-data bytes: Shift_JIS text (half-width kana, kanji) with CRLF records. */
export function shiftJisSample(records = 200): Buffer {
  const line = Buffer.from([
    ...Buffer.from('D4980000000000001234'),
    0xb6, 0xb0, 0xc4, 0xde, // ｶｰﾄﾞ (JIS8 half-width kana)
    0x89, 0xc1, 0x96, 0xbf, 0x93, 0x58, // 加盟店 in Shift_JIS
    0x0d, 0x0a,
  ]);
  return Buffer.concat(Array.from({ length: records }, () => line));
}

/** A self-signed certificate for 127.0.0.1 (its own CA), made with openssl. */
export async function selfSignedCert(dir: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1',
  ]);
  return { cert, key };
}
