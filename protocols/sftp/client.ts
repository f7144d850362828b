// Our SFTP client to partners (card company centres): known_hosts checked, key authentication,
// keepalive, an inactivity deadline on every operation, upload to a temporary name then rename,
// a size check after every transfer, one operation at a time, and a fresh connection after any
// failure so a retry starts clean.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import SftpLib from 'ssh2-sftp-client';
import type { Logger } from 'pino';
import { assertSafeFileName } from '../../spool/landing.ts';
import { isTemporaryName } from '../../spool/tree.ts';
import type { ProtocolClient, RemoteFile, TransferResult } from '../contract.ts';
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

  async push(localPath: string, remoteName: string): Promise<TransferResult> {
    assertSafeFileName(remoteName);
    const { size } = await stat(localPath);
    const finalPath = this.remote(this.endpoint.path, remoteName);
    const tempPath = this.remote(this.endpoint.path, remoteTemporaryName(remoteName));
    try {
      return await this.op(`push ${remoteName}`, async (conn, touch) => {
        await conn.fastPut(localPath, tempPath, { ...FAST_OPTIONS, step: touch });
        const sent = await conn.stat(tempPath);
        if (sent.size !== size) throw new Error(`sftp push ${remoteName}: ${sent.size} bytes at the partner, ${size} sent`);
        await replace(conn, tempPath, finalPath);
        // The size was verified on the temporary name; a server that takes files in at once (ours
        // does) may already have moved it on, so a missing file here is not a failure.
        const landed = await conn.stat(finalPath).catch((err: Error) => (/no such file/i.test(err.message) ? undefined : Promise.reject(err)));
        if (landed && landed.size !== size) throw new Error(`sftp push ${remoteName}: ${landed.size} bytes after rename, ${size} sent`);
        this.log.info({ remoteName, bytes: size }, 'sftp push done');
        return { remoteName, bytes: size };
      });
    } catch (err) {
      // Leave no half-written temporary behind at the partner (best effort, on a new connection).
      await this.op(`clean up ${remoteName}`, (conn) => conn.delete(tempPath, true)).catch(() => undefined);
      throw err;
    }
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
