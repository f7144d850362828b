// Our SFTP client to partners (card company centres): known_hosts checked, key authentication,
// keepalive, an inactivity deadline on every operation, the staged-push rule (temporary name,
// size check, rename; gone after the rename = taken; protocols/staged-push.ts), one operation at a time, and a fresh connection after any
// failure so a retry starts clean.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import SftpLib from 'ssh2-sftp-client';
import type { Logger } from 'pino';
import { assertSafeFileName } from '../../spool/landing.ts';
import { isTemporaryName } from '../../spool/tree.ts';
import type { InterruptedPush, ProtocolClient, PushOptions, RemoteFile, TransferResult } from '../contract.ts';
import { PushInDoubtError, resumeStagedPush, stagedPush, type RemoteFolder, type ResumeOutcome } from '../staged-push.ts';
import { readSecret } from '../secrets.ts';
import type { SftpEndpoint } from './config.ts';
import { HostKeyError, hostKeyAlgorithmsFor, isKnownHostKey, knownKeysFor } from './known-hosts.ts';
import { SerialQueue, remoteTemporaryName, withTimeout } from './serial.ts';

// fastPut/fastGet: 64 requests of 32 KiB in flight is what OpenSSH's sftp does, and what any
// server must accept (the SFTP draft's minimum packet size is 32 KiB plus headers).
const FAST_OPTIONS = { concurrency: 64, chunkSize: 32768 };
// Reads: ssh2 caps each request at what the server allows (OpenSSH: 255 KiB via limits@openssh.com).
const FAST_GET_OPTIONS = { concurrency: 64, chunkSize: 255 * 1024 };

export class SftpClient implements ProtocolClient {
  private conn: SftpLib | undefined;
  private readonly queue = new SerialQueue();
  private readonly timeoutMs: number;

  constructor(
    private readonly endpoint: SftpEndpoint,
    private readonly log: Logger,
  ) {
    this.timeoutMs = endpoint.timeoutSeconds * 1000;
  }

  private remote(dir: string, name: string): string {
    return path.posix.join(dir, name);
  }

  private async connection(): Promise<SftpLib> {
    if (this.conn) return this.conn;
    const { host, port, user } = this.endpoint;
    const known = knownKeysFor(this.endpoint.knownHosts, host, port);
    if (!known.some((k) => !k.revoked)) throw new HostKeyError(`no host key for ${host}:${port} in ${this.endpoint.knownHosts}`);
    const conn = new SftpLib(`sftp:${host}`);
    let rejectedKey = false;
    try {
      await withTimeout(`sftp connect ${host}:${port}`, this.timeoutMs, () =>
        conn.connect({
          host,
          port,
          username: user,
          privateKey: readSecret(this.endpoint.privateKey, `sftp ${host} private key`),
          passphrase: this.endpoint.passphrase ? readSecret(this.endpoint.passphrase, `sftp ${host} passphrase`) : undefined,
          readyTimeout: this.timeoutMs,
          keepaliveInterval: this.endpoint.keepaliveSeconds * 1000,
          keepaliveCountMax: 3,
          algorithms: { serverHostKey: hostKeyAlgorithmsFor(known) as never },
          hostVerifier: (key: Buffer) => {
            const ok = isKnownHostKey(known, key);
            if (!ok) rejectedKey = true;
            return ok;
          },
        }),
        () => void conn.end().catch(() => undefined),
      );
    } catch (err) {
      await conn.end().catch(() => undefined);
      if (rejectedKey) throw new HostKeyError(`host key of ${host}:${port} does not match ${this.endpoint.knownHosts}`);
      throw err;
    }
    // A dropped connection must not be reused: the next operation reconnects.
    conn.on('close', () => {
      if (this.conn === conn) this.conn = undefined;
    });
    this.conn = conn;
    this.log.debug({ host, port, user }, 'sftp connected');
    return conn;
  }

  /** Runs one operation with a deadline; on any failure the connection is dropped for a clean retry. */
  private op<T>(what: string, work: (conn: SftpLib, touch: () => void) => Promise<T>): Promise<T> {
    return this.queue.run(async () => {
      const conn = await this.connection();
      try {
        return await withTimeout(`sftp ${what}`, this.timeoutMs, (touch) => work(conn, touch), () => void this.drop(conn));
      } catch (err) {
        await this.drop(conn);
        throw err;
      }
    });
  }

  private async drop(conn: SftpLib): Promise<void> {
    if (this.conn === conn) this.conn = undefined;
    await conn.end().catch(() => undefined);
  }

  /** The partner's push folder over one connection, for the staged-push rule. */
  private folder(conn: SftpLib, touch: () => void): RemoteFolder {
    const at = (name: string) => this.remote(this.endpoint.path, name);
    return {
      size: async (name) => {
        try {
          return (await conn.stat(at(name))).size;
        } catch (err) {
          if (/no such file/i.test((err as Error).message)) return undefined;
          throw err;
        }
      },
      upload: async (localPath, name) => {
        await conn.fastPut(localPath, at(name), { ...FAST_OPTIONS, step: touch });
      },
      rename: (from, to) => replace(conn, at(from), at(to)),
      remove: async (name) => {
        await conn.delete(at(name), true);
      },
    };
  }

  async push(localPath: string, remoteName: string, options: PushOptions = {}): Promise<TransferResult> {
    assertSafeFileName(remoteName);
    const { size } = await stat(localPath);
    const tempName = options.tempName ?? remoteTemporaryName(remoteName);
    try {
      const result = await this.op(`push ${remoteName}`, (conn, touch) => stagedPush(this.folder(conn, touch), localPath, size, remoteName, { tempName, journal: options.journal, protocol: 'sftp' }));
      this.log.info({ remoteName, bytes: size, note: result.note }, 'sftp push done');
      return result;
    } catch (err) {
      // Leave no half-written temporary behind at the partner (best effort, on a new connection);
      // a push in doubt keeps its temporary for the resume to look at.
      if (!(err instanceof PushInDoubtError)) await this.op(`clean up ${remoteName}`, (conn) => conn.delete(this.remote(this.endpoint.path, tempName), true)).catch(() => undefined);
      throw err;
    }
  }

  async resume(localPath: string, remoteName: string, interrupted: InterruptedPush): Promise<ResumeOutcome> {
    assertSafeFileName(remoteName);
    assertSafeFileName(interrupted.tempName);
    const { size } = await stat(localPath);
    return this.op(`resume ${remoteName}`, (conn, touch) => resumeStagedPush(this.folder(conn, touch), remoteName, size, interrupted.phase, interrupted.tempName, 'sftp'));
  }

  async pull(remoteName: string, localPath: string): Promise<TransferResult> {
    assertSafeFileName(remoteName);
    const remotePath = this.remote(this.endpoint.pullPath ?? this.endpoint.path, remoteName);
    return this.op(`pull ${remoteName}`, async (conn, touch) => {
      const offered = await conn.stat(remotePath);
      await conn.fastGet(remotePath, localPath, { ...FAST_GET_OPTIONS, step: touch });
      const { size } = await stat(localPath);
      if (size !== offered.size) throw new Error(`sftp pull ${remoteName}: got ${size} of ${offered.size} bytes`);
      this.log.info({ remoteName, bytes: size }, 'sftp pull done');
      return { remoteName, bytes: size };
    });
  }

  async list(): Promise<RemoteFile[]> {
    const dir = this.endpoint.pullPath ?? this.endpoint.path;
    return this.op(`list ${dir}`, async (conn) => {
      const entries = await conn.list(dir);
      return entries
        .filter((e) => e.type === '-' && !isTemporaryName(e.name))
        .map((e) => ({ name: e.name, size: e.size, modifiedAt: e.modifyTime }))
        .sort((a, b) => a.name.localeCompare(b.name));
    });
  }

  async close(): Promise<void> {
    await this.queue.run(async () => {
      if (this.conn) await this.drop(this.conn);
    });
  }
}

/** Renames over an existing file: posix-rename where offered, else remove then rename. */
async function replace(conn: SftpLib, from: string, to: string): Promise<void> {
  try {
    await conn.posixRename(from, to);
    return;
  } catch (err) {
    if (!/not support|unsupported/i.test((err as Error).message)) throw err;
  }
  // Plain SFTP RENAME refuses an existing target: only then remove the earlier copy first.
  try {
    await conn.rename(from, to);
  } catch (err) {
    if (!(await conn.exists(to))) throw err;
    await conn.delete(to);
    await conn.rename(from, to);
  }
}
