// Our FTP/FTPS client to partners (basic-ftp): explicit TLS by default, an inactivity deadline on
// every operation, the staged-push rule (temporary name, size check, rename; gone after the
// rename = taken; protocols/staged-push.ts), a size check after every transfer,
// one operation at a time, and a fresh connection after any failure so a retry starts clean.
import { stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client as BasicFtp, FTPError } from 'basic-ftp';
import type { Logger } from 'pino';
import { assertSafeFileName } from '../../spool/landing.ts';
import { isTemporaryName } from '../../spool/tree.ts';
import type { InterruptedPush, ProtocolClient, PushOptions, RemoteFile, TransferResult } from '../contract.ts';
import { PushInDoubtError, resumeStagedPush, stagedPush, type RemoteFolder, type ResumeOutcome } from '../staged-push.ts';
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

  /** The partner's push folder over one connection, for the staged-push rule. */
  private folder(conn: BasicFtp): RemoteFolder {
    const at = (name: string) => path.posix.join(this.endpoint.path, name);
    return {
      // 550: no such file (or not a plain file): not there.
      size: (name) => conn.size(at(name)).catch((err: { code?: number }) => (err.code === 550 ? undefined : Promise.reject(err))),
      upload: async (localPath, name) => {
        await conn.uploadFrom(localPath, at(name));
      },
      rename: (from, to) => replace(conn, at(from), at(to)),
      remove: async (name) => {
        await conn.remove(at(name), true);
      },
    };
  }

  async push(localPath: string, remoteName: string, options: PushOptions = {}): Promise<TransferResult> {
    assertSafeFileName(remoteName);
    const { size } = await stat(localPath);
    const tempName = options.tempName ?? remoteTemporaryName(remoteName);
    try {
      const result = await this.op(`push ${remoteName}`, (conn) => stagedPush(this.folder(conn), localPath, size, remoteName, { tempName, journal: options.journal, protocol: 'ftp' }));
      this.log.info({ remoteName, bytes: size, note: result.note }, 'ftp push done');
      return result;
    } catch (err) {
      if (!(err instanceof PushInDoubtError)) await this.op(`clean up ${remoteName}`, (conn) => conn.remove(path.posix.join(this.endpoint.path, tempName), true)).catch(() => undefined);
      throw err;
    }
  }

  async resume(localPath: string, remoteName: string, interrupted: InterruptedPush): Promise<ResumeOutcome> {
    assertSafeFileName(remoteName);
    assertSafeFileName(interrupted.tempName);
    const { size } = await stat(localPath);
    return this.op(`resume ${remoteName}`, (conn) => resumeStagedPush(this.folder(conn), remoteName, size, interrupted.phase, interrupted.tempName, 'ftp'));
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
