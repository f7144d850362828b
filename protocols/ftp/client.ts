// Our FTP/FTPS client to partners (basic-ftp): explicit TLS by default, an inactivity deadline on
// every operation, upload to a temporary name then rename, a size check after every transfer,
// one operation at a time, and a fresh connection after any failure so a retry starts clean.
import { stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client as BasicFtp, FTPError } from 'basic-ftp';
import type { Logger } from 'pino';
import { assertSafeFileName } from '../../spool/landing.ts';
import { isTemporaryName } from '../../spool/tree.ts';
import type { ProtocolClient, RemoteFile, TransferResult } from '../contract.ts';
import { readSecretString } from '../secrets.ts';
import { SerialQueue, remoteTemporaryName, withTimeout } from '../sftp/serial.ts';
import type { FtpEndpoint } from './config.ts';

export class FtpClient implements ProtocolClient {
  private conn: BasicFtp | undefined;
  private readonly queue = new SerialQueue();
  private readonly timeoutMs: number;

  constructor(
    private readonly endpoint: FtpEndpoint,
    private readonly log: Logger,
  ) {
    this.timeoutMs = endpoint.timeoutSeconds * 1000;
  }

  private async connection(): Promise<BasicFtp> {
    if (this.conn && !this.conn.closed) return this.conn;
    const { host, port, user, secure } = this.endpoint;
    // basic-ftp's own timeout closes a socket that stays silent this long.
    const conn = new BasicFtp(this.timeoutMs);
    try {
      await conn.access({
        host,
        port,
        user,
        password: readSecretString(this.endpoint.password, `ftp ${host} password`),
        secure: secure === 'explicit',
        secureOptions:
          secure === 'explicit'
            ? { ca: this.endpoint.ca ? readFileSync(this.endpoint.ca) : undefined, rejectUnauthorized: this.endpoint.rejectUnauthorized, servername: host }
            : undefined,
      });
    } catch (err) {
      conn.close();
      throw err;
    }
    this.conn = conn;
    this.log.debug({ host, port, user, secure }, 'ftp connected');
    return conn;
  }

  private op<T>(what: string, work: (conn: BasicFtp, touch: () => void) => Promise<T>): Promise<T> {
    return this.queue.run(async () => {
      const conn = await this.connection();
      try {
        return await withTimeout(
          `ftp ${what}`,
          this.timeoutMs,
          async (touch) => {
            conn.trackProgress(() => touch());
            try {
              return await work(conn, touch);
            } finally {
              conn.trackProgress();
            }
          },
          () => conn.close(),
        );
      } catch (err) {
        // A server's 5xx answer leaves the session usable; anything else (timeout, socket) does not.
        if (!(err instanceof FTPError)) this.drop(conn);
        throw err;
      }
    });
  }

  private drop(conn: BasicFtp): void {
    if (this.conn === conn) this.conn = undefined;
    conn.close();
  }

  async push(localPath: string, remoteName: string): Promise<TransferResult> {
    assertSafeFileName(remoteName);
    const { size } = await stat(localPath);
    const finalPath = path.posix.join(this.endpoint.path, remoteName);
    const tempPath = path.posix.join(this.endpoint.path, remoteTemporaryName(remoteName));
    try {
      return await this.op(`push ${remoteName}`, async (conn) => {
        await conn.uploadFrom(localPath, tempPath);
        const sent = await conn.size(tempPath);
        if (sent !== size) throw new Error(`ftp push ${remoteName}: ${sent} bytes at the partner, ${size} sent`);
        await replace(conn, tempPath, finalPath);
        // The size was verified on the temporary name; a server that takes files in at once may
        // already have moved it on (550), which is not a failure: a retry would deliver it twice.
        const landed = await conn.size(finalPath).catch((err: { code?: number }) => (err.code === 550 ? undefined : Promise.reject(err)));
        if (landed !== undefined && landed !== size) throw new Error(`ftp push ${remoteName}: ${landed} bytes after rename, ${size} sent`);
        this.log.info({ remoteName, bytes: size }, 'ftp push done');
        return { remoteName, bytes: size };
      });
    } catch (err) {
      await this.op(`clean up ${remoteName}`, (conn) => conn.remove(tempPath, true)).catch(() => undefined);
      throw err;
    }
  }

  async pull(remoteName: string, localPath: string): Promise<TransferResult> {
    assertSafeFileName(remoteName);
    const remotePath = path.posix.join(this.endpoint.pullPath ?? this.endpoint.path, remoteName);
    return this.op(`pull ${remoteName}`, async (conn) => {
      const offered = await conn.size(remotePath);
      await conn.downloadTo(localPath, remotePath);
      const { size } = await stat(localPath);
      if (size !== offered) throw new Error(`ftp pull ${remoteName}: got ${size} of ${offered} bytes`);
      this.log.info({ remoteName, bytes: size }, 'ftp pull done');
      return { remoteName, bytes: size };
    });
  }

  async list(): Promise<RemoteFile[]> {
    const dir = this.endpoint.pullPath ?? this.endpoint.path;
    return this.op(`list ${dir}`, async (conn) => {
      const entries = await conn.list(dir);
      return entries
        .filter((e) => e.isFile && !isTemporaryName(e.name))
        .map((e) => ({ name: e.name, size: e.size, modifiedAt: e.modifiedAt?.getTime() }))
        .sort((a, b) => a.name.localeCompare(b.name));
    });
  }

  async close(): Promise<void> {
    await this.queue.run(async () => {
      if (this.conn) this.drop(this.conn);
    });
  }
}

/** RNTO replaces the target on most servers; where it refuses, remove the old copy and retry. */
async function replace(conn: BasicFtp, from: string, to: string): Promise<void> {
  try {
    await conn.rename(from, to);
  } catch (err) {
    if (!(err instanceof FTPError)) throw err;
    await conn.remove(to, true);
    await conn.rename(from, to);
  }
}
