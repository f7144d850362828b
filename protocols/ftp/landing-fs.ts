// The file system ftp-srv sees for one partner session. ftp-srv's own writes straight to the final
// name and takes a dropped data connection for success; this one:
//   - resolves every path in the partner's virtual root (/inbound writable, /outbound readable),
//     refusing '..', NUL, symlinks and anything outside;
//   - lands uploads through a spool Landing (temporary name, renamed on success);
//   - commits only when the data connection ended AND the control connection is still there a
//     moment later: a client that dies closes both, a client that finished waits for our 226.
//     (A plain FTP data connection has no end-of-file marker other than its close, so the control
//     connection is the only witness that the sender meant to stop there.)
import { constants as FS, type Stats } from 'node:fs';
import { lstat, readdir, rename } from 'node:fs/promises';
import { openSpoolFile, spoolFileSize } from '../../spool/encrypted-file.ts';
import { Writable } from 'node:stream';
import ftpSrv from 'ftp-srv';
import type { FtpConnection } from 'ftp-srv';
import { LandingRefused, beginLanding, recordBeforeAck, type Landing, type LandingLimits } from '../../spool/landing.ts';
import { isTemporaryName } from '../../spool/tree.ts';
import { EscapeRefused, NotInTree, resolveVirtualPath, type PartnerDirs, type VirtualPath } from '../sftp/virtual-root.ts';

/** How long after the data connection ends we wait to see whether the control connection survives. */
export const DROP_GRACE_MS = 200;

export interface FsHooks {
  dirs: PartnerDirs;
  refused(detail: string): void;
  /** The upload's audit row, committed before ftp-srv answers 226 (rejects when it cannot be). */
  recordUpload(name: string, bytes: number): Promise<void>;
  /** After the file was committed (and its audit row with it). */
  uploaded(name: string, finalPath: string, bytes: number): void;
  uploadAborted(name: string, why: string): void;
  /** A download stream was opened (RETR completion is reported by the connection's RETR event). */
  downloadStarted(name: string, size: number): void;
  /** Data is moving: the control connection is not idle (long transfers outlast the idle timeout). */
  touch(): void;
  /** This partner's upload size limit and the disk's free-space reserve. */
  landingLimits?: LandingLimits;
}

type FakeStats = Pick<Stats, 'size' | 'mode' | 'mtime' | 'uid' | 'gid'> & { name: string; isDirectory(): boolean };

function dirStats(name: string, writable: boolean): FakeStats {
  return { name, size: 0, mode: FS.S_IFDIR | (writable ? 0o755 : 0o555), mtime: new Date(), uid: 0, gid: 0, isDirectory: () => true };
}

/** ftp-srv replies with the message (and, for some commands, the code) of what we throw. */
export class FtpFsError extends Error {
  constructor(
    message: string,
    readonly code = 550,
  ) {
    super(message);
  }
}
class PermissionError extends FtpFsError {}

/** Writes the data connection's bytes into a Landing; commits or aborts as described above. */
class LandingStream extends Writable {
  private position = 0;
  private settled = false;

  constructor(
    private readonly landing: Landing,
    private readonly name: string,
    private readonly controlGone: () => boolean,
    private readonly hooks: FsHooks,
  ) {
    super({ highWaterMark: 1 << 20 });
    // ftp-srv signals the end of the data connection by emitting 'close' on the stream it piped into.
    this.on('close', () => {
      if (!this.writableEnded && !this.destroyed) this.end();
    });
  }

  private append(chunk: Buffer, done: (err?: Error | null) => void): void {
    this.hooks.touch();
    const refusal = this.landing.admit(this.position + chunk.length);
    if (refusal) return done(refusal); // ftp-srv answers 550 with the message; the upload is aborted
    this.landing.handle.write(chunk, 0, chunk.length, this.position).then(({ bytesWritten }) => {
      this.position += bytesWritten;
      done();
    }, done);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.append(chunk, done);
  }

  // Many small socket reads become one write: fewer trips through the thread pool.
  override _writev(chunks: Array<{ chunk: Buffer }>, done: (err?: Error | null) => void): void {
    this.append(Buffer.concat(chunks.map((c) => c.chunk)), done);
  }

  override _final(done: (err?: Error | null) => void): void {
    setTimeout(() => {
      if (this.settled) return done(); // destroyed (and aborted) while we waited
      if (this.controlGone()) {
        this.abortLanding('control connection closed with the data connection');
        return done(new Error('upload aborted: connection dropped'));
      }
      this.settled = true;
      this.landing.commit((size) => this.hooks.recordUpload(this.name, size)).then(
        ({ path, size }) => {
          this.hooks.uploaded(this.name, path, size);
          done();
        },
        (err: Error) => {
          // The temporary is gone before ftp-srv answers 550.
          this.hooks.uploadAborted(this.name, err.message);
          void this.landing.abort().finally(() => done(err));
        },
      );
    }, DROP_GRACE_MS);
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (!this.settled) this.abortLanding(err?.message ?? 'transfer broken');
    done(err);
  }

  private abortLanding(why: string): void {
    this.settled = true;
    void this.landing.abort();
    this.hooks.uploadAborted(this.name, why);
  }
}

export class LandingFileSystem extends ftpSrv.FileSystem {
  private virtualCwd = '/';
  private controlClosed = false;
  private readonly openUploads = new Set<LandingStream>();

  constructor(
    connection: FtpConnection,
    private readonly hooks: FsHooks,
  ) {
    super(connection, { root: hooks.dirs.inbound, cwd: '/' });
    const socket = (connection as unknown as { commandSocket: NodeJS.EventEmitter }).commandSocket;
    const gone = () => {
      this.controlClosed = true;
      for (const s of this.openUploads) s.destroy(new Error('control connection closed'));
    };
    socket.once('end', gone);
    socket.once('close', gone);
  }

  private resolvePath(p = '.'): VirtualPath {
    try {
      return resolveVirtualPath(this.hooks.dirs, this.virtualCwd, p);
    } catch (err) {
      if (err instanceof EscapeRefused) {
        this.hooks.refused(err.message);
        throw new PermissionError('refused');
      }
      if (err instanceof NotInTree) throw new FtpFsError(err.message);
      throw err;
    }
  }

  private async regularFile(v: VirtualPath & { kind: 'file' }): Promise<Stats> {
    const s = await lstat(v.real).catch(() => undefined);
    if (s?.isSymbolicLink()) {
      this.hooks.refused(`symbolic link ${v.clientPath}`);
      throw new PermissionError('refused');
    }
    if (!s?.isFile()) throw new FtpFsError(`no such file ${v.clientPath}`);
    return s;
  }

  override currentDirectory(): string {
    return this.virtualCwd;
  }

  override async get(fileName: string): Promise<FakeStats> {
    const v = this.resolvePath(fileName);
    if (v.kind === 'root') return dirStats(fileName, false);
    if (v.kind === 'dir') return dirStats(fileName, v.area === 'inbound');
    const s = await this.regularFile(v);
    // The partner sees the content's size, not the encrypted file's.
    return Object.assign(s, { name: fileName, size: await spoolFileSize(v.real, s) });
  }

  override async list(p = '.'): Promise<FakeStats[]> {
    const v = this.resolvePath(p);
    if (v.kind === 'root') return [dirStats('inbound', true), dirStats('outbound', false)];
    if (v.kind === 'file') return [await this.get(p)];
    const out: FakeStats[] = [];
    for (const e of await readdir(v.dir, { withFileTypes: true })) {
      if (!e.isFile() || isTemporaryName(e.name)) continue;
      const s = await lstat(`${v.dir}/${e.name}`).catch(() => undefined);
      if (s?.isFile()) out.push(Object.assign(s, { name: e.name, size: await spoolFileSize(`${v.dir}/${e.name}`, s).catch(() => s.size) }));
    }
    return out;
  }

  override async chdir(p = '.'): Promise<string> {
    const v = this.resolvePath(p);
    if (v.kind === 'file') throw new FtpFsError('not a folder');
    this.virtualCwd = v.clientPath;
    return this.virtualCwd;
  }

  override async write(fileName: string, { append = false, start = undefined }: { append?: boolean; start?: number } = {}) {
    const v = this.resolvePath(fileName);
    if (v.kind !== 'file' || v.area !== 'inbound') throw new PermissionError('uploads go to /inbound');
    if (append || (start ?? 0) > 0) throw new PermissionError('whole files only: no append, no restart');
    let landing: Landing;
    try {
      landing = await beginLanding(v.dir, v.name, this.hooks.landingLimits);
    } catch (err) {
      if (err instanceof LandingRefused) {
        this.hooks.refused(`upload of ${v.name}: ${err.message}`);
        throw new FtpFsError(err.message, err.reason === 'disk-full' ? 452 : 552);
      }
      throw err;
    }
    const stream = new LandingStream(landing, v.name, () => this.controlClosed, this.hooks);
    this.openUploads.add(stream);
    stream.once('close', () => this.openUploads.delete(stream));
    if (this.controlClosed) stream.destroy(new Error('control connection closed'));
    return { stream, clientPath: v.clientPath };
  }

  override async read(fileName: string, { start = undefined }: { start?: number } = {}) {
    const v = this.resolvePath(fileName);
    if (v.kind !== 'file' || v.area !== 'outbound') throw new PermissionError('downloads come from /outbound');
    await this.regularFile(v);
    // Decrypted here, as the bytes leave to the partner; REST (start) reads from that offset.
    const fh = await openSpoolFile(v.real, FS.O_RDONLY | FS.O_NOFOLLOW);
    this.hooks.downloadStarted(v.name, fh.size);
    const stream = fh.createReadStream({ start, highWaterMark: 1 << 20 });
    stream.on('data', () => this.hooks.touch());
    return { stream, clientPath: v.clientPath };
  }

  override async rename(from: string, to: string): Promise<void> {
    const a = this.resolvePath(from);
    const b = this.resolvePath(to);
    if (a.kind !== 'file' || b.kind !== 'file' || a.area !== 'inbound' || b.area !== 'inbound') {
      throw new PermissionError('renames only inside /inbound');
    }
    await this.regularFile(a);
    const { size } = await lstat(a.real);
    try {
      await recordBeforeAck(() => this.hooks.recordUpload(`${a.name} renamed to ${b.name}`, size));
    } catch (err) {
      this.hooks.refused(`rename ${a.name} to ${b.name}: ${(err as Error).message}`);
      throw new FtpFsError((err as Error).message, 451);
    }
    await rename(a.real, b.real);
    this.hooks.uploaded(b.name, b.real, size);
  }

  override async delete(): Promise<never> {
    throw new PermissionError('not allowed');
  }

  override async mkdir(): Promise<never> {
    throw new PermissionError('not allowed');
  }

  override async chmod(): Promise<never> {
    throw new PermissionError('not allowed');
  }
}
