// One partner's SFTP subsystem on our server: every request is resolved against the virtual root
// (/inbound writable, /outbound readable). Uploads write into a spool Landing and are committed
// only when the client closes the handle and every write succeeded; a connection that ends with
// a handle still open aborts it, so a dropped upload leaves nothing in inbound.
import { constants as FS } from 'node:fs';
import { lstat, readdir, rename } from 'node:fs/promises';
import { openSpoolFile, spoolFileSize, type SpoolReader } from '../../spool/encrypted-file.ts';
import type { Stats } from 'node:fs';
import ssh2 from 'ssh2';
import type { Attributes, FileEntry, SFTPWrapper } from 'ssh2';
import type { Logger } from 'pino';
import { AuditWriteFailed, LandingRefused, beginLanding, recordBeforeAck, type Landing, type LandingLimits } from '../../spool/landing.ts';
import { isTemporaryName } from '../../spool/tree.ts';
import type { AuditEvent } from '../../spool/ledger/audit.ts';
import { EscapeRefused, NotInTree, resolveVirtualPath, type PartnerDirs, type VirtualPath } from './virtual-root.ts';

const { STATUS_CODE, OPEN_MODE } = ssh2.utils.sftp;
const MAX_READ = 256 * 1024;
// Clients send 32 KiB WRITEs; one disk write each costs a thread-pool round trip. Contiguous
// writes are gathered up to this size and written at once. A write is acknowledged once gathered:
// if a later disk write fails, the CLOSE fails and the upload is aborted, so nothing is lost
// silently (and the commit fsyncs before anything appears in inbound).
const BATCH_BYTES = 1 << 20;
const MAX_FLUSHES_IN_FLIGHT = 4;
// Above this many bytes held for one handle, acknowledgements wait for the disk: a client that
// waits for its answers (every real one keeps a bounded number in flight) slows down to disk speed.
const ACK_HOLD_BYTES = MAX_FLUSHES_IN_FLIGHT * BATCH_BYTES;

/**
 * Bounds on what one partner's session may make us hold. A client that pipelines requests without
 * waiting for answers gets refusals above these, never our memory: OpenSSH keeps 64 requests of
 * 32 KiB in flight, our own client 64 of up to 255 KiB.
 */
export interface SessionLimits {
  /** Open file and folder handles. */
  maxHandles: number;
  /** Requests received and not yet answered. */
  maxOutstandingRequests: number;
  /** Upload bytes received and not yet on disk, over all handles. */
  maxBufferedWriteBytes: number;
  /** Download bytes being read or waiting for the client's window, over all handles. */
  maxBufferedReadBytes: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  maxHandles: 64,
  maxOutstandingRequests: 1024,
  maxBufferedWriteBytes: 16 << 20,
  maxBufferedReadBytes: 32 << 20,
};

/** Bytes ssh2 holds for this channel because the client has not opened its window for them. */
function outgoingBacklog(sftp: SFTPWrapper): number {
  const queued = (sftp as unknown as { _buffer?: Buffer[] })._buffer;
  if (!Array.isArray(queued)) return 0;
  let n = 0;
  for (const b of queued) n += b.length;
  return n;
}

interface WriteBatch {
  offset: number;
  length: number;
  chunks: Buffer[];
}

export interface SessionHooks {
  partnerId: string;
  dirs: PartnerDirs;
  log: Logger;
  audit(event: AuditEvent, detail: string): void;
  /** The upload's audit row, committed before the client is told OK (rejects when it cannot be). */
  recordUpload(detail: string): Promise<void>;
  /** Any request counts as activity for the idle timeout. */
  touch(): void;
  limits?: Partial<SessionLimits>;
  /** This partner's upload size limit and the disk's free-space reserve. */
  landingLimits?: LandingLimits;
  landed(finalPath: string): void;
  pickedUp(name: string, bytes: number): void;
}

type OpenHandle =
  | {
      kind: 'upload';
      name: string;
      landing: Landing;
      pending: Set<Promise<void>>;
      failed?: Error;
      batch: WriteBatch;
      openedAt: number;
      /** Bytes received for this handle and not yet written. */
      held: number;
      /** Acknowledgements waiting for the disk to catch up. */
      waiters: Array<() => void>;
    }
  | { kind: 'download'; name: string; real: string; fh: SpoolReader; size: number; sent: number }
  | { kind: 'dir'; entries: FileEntry[]; done: boolean };

class Refused extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

function dirAttrs(writable: boolean): Attributes {
  const now = Math.floor(Date.now() / 1000);
  return { mode: FS.S_IFDIR | (writable ? 0o755 : 0o555), uid: 0, gid: 0, size: 0, atime: now, mtime: now };
}

/** A file's attributes as the partner sees them: `size` is the content's (plaintext) size. */
function fileAttrs(s: Stats, size = s.size): Attributes {
  return { mode: FS.S_IFREG | 0o644, uid: 0, gid: 0, size, atime: Math.floor(s.atimeMs / 1000), mtime: Math.floor(s.mtimeMs / 1000) };
}

function longname(name: string, a: Attributes): string {
  const isDir = (a.mode & FS.S_IFMT) === FS.S_IFDIR;
  const perms = isDir ? (a.mode & 0o200 ? 'drwxr-xr-x' : 'dr-xr-xr-x') : '-rw-r--r--';
  const date = new Date(a.mtime * 1000).toISOString().slice(0, 16).replace('T', ' ');
  return `${perms} 1 tsunagi tsunagi ${String(a.size).padStart(12)} ${date} ${name}`;
}

export class SftpSession {
  private readonly handles = new Map<number, OpenHandle>();
  private nextHandle = 1;
  private ended = false;
  private readonly limits: SessionLimits;
  private outstanding = 0;
  private heldWriteBytes = 0;
  private heldReadBytes = 0;
  private overloadLogged = false;

  constructor(
    private readonly sftp: SFTPWrapper,
    private readonly hooks: SessionHooks,
  ) {
    this.limits = { ...DEFAULT_SESSION_LIMITS, ...hooks.limits };
    const on = (event: string, fn: (reqid: number, ...args: never[]) => Promise<void>) =>
      sftp.on(event as 'OPEN', ((reqid: number, ...args: never[]) => {
        hooks.touch();
        if (this.outstanding >= this.limits.maxOutstandingRequests) {
          // Answered at once, holding nothing; a refused WRITE also fails its upload (no holes).
          if (event === 'WRITE') this.failUpload(args[0] as unknown as Buffer, 'too many outstanding requests');
          this.overloaded(`more than ${this.limits.maxOutstandingRequests} requests outstanding`);
          return void sftp.status(reqid, STATUS_CODE.FAILURE, 'too many outstanding requests');
        }
        this.outstanding++;
        fn.call(this, reqid, ...args)
          .catch((err: unknown) => this.fail(reqid, err))
          .finally(() => this.outstanding--);
      }) as never);
    on('OPEN', this.onOpen);
    on('WRITE', this.onWrite);
    on('READ', this.onRead);
    on('CLOSE', this.onClose);
    on('FSTAT', this.onFstat);
    on('FSETSTAT', this.onNoop);
    on('SETSTAT', this.onSetstat);
    on('STAT', this.onStat);
    on('LSTAT', this.onStat);
    on('OPENDIR', this.onOpendir);
    on('READDIR', this.onReaddir);
    on('REALPATH', this.onRealpath);
    on('RENAME', this.onRename);
    on('REMOVE', this.onDenied);
    on('RMDIR', this.onDenied);
    on('MKDIR', this.onDenied);
    on('SYMLINK', this.onSymlink);
    on('READLINK', this.onSymlink);
    // The client sent EOF (it is done): close our side, or it waits for us forever.
    sftp.on('end', () => sftp.end());
    sftp.on('close', () => void this.end());
    sftp.on('error', (err: Error) => hooks.log.warn({ err: err.message }, 'sftp channel error'));
  }

  /** The connection or channel ended: abort unfinished uploads, release read handles. */
  async end(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    for (const [id, h] of this.handles) {
      this.handles.delete(id);
      if (h.kind === 'upload') {
        this.releaseAcks(h, true);
        await Promise.allSettled([...h.pending]);
        await h.landing.abort();
        this.hooks.audit('refused', `upload of ${h.name} aborted: connection ended before close`);
        this.hooks.log.warn({ partnerId: this.hooks.partnerId, fileName: h.name }, 'sftp upload aborted (connection dropped)');
      } else if (h.kind === 'download') {
        await h.fh.close().catch(() => undefined);
      }
    }
  }

  private fail(reqid: number, err: unknown): void {
    if (err instanceof Refused) {
      this.sftp.status(reqid, err.code, err.message);
      return;
    }
    if (err instanceof EscapeRefused) {
      this.hooks.audit('refused', err.message);
      this.sftp.status(reqid, STATUS_CODE.PERMISSION_DENIED, 'refused');
      return;
    }
    if (err instanceof AuditWriteFailed) {
      this.hooks.audit('refused', err.message);
      this.sftp.status(reqid, STATUS_CODE.FAILURE, err.message);
      return;
    }
    if (err instanceof LandingRefused) {
      this.hooks.audit('refused', err.message);
      this.sftp.status(reqid, STATUS_CODE.FAILURE, err.message);
      return;
    }
    if (err instanceof NotInTree) {
      this.sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE, err.message);
      return;
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return void this.sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE, 'no such file');
    if (code === 'ELOOP') {
      this.hooks.audit('refused', 'symbolic link in outbound');
      return void this.sftp.status(reqid, STATUS_CODE.PERMISSION_DENIED, 'refused');
    }
    this.hooks.log.error({ err: (err as Error).message, partnerId: this.hooks.partnerId }, 'sftp request failed');
    this.sftp.status(reqid, STATUS_CODE.FAILURE, 'failure');
  }

  private resolve(p: string): VirtualPath {
    return resolveVirtualPath(this.hooks.dirs, '/', p);
  }

  /** Logs (once per session) that the client is over a bound: a flood, or a broken client. */
  private overloaded(what: string): void {
    if (this.overloadLogged) return;
    this.overloadLogged = true;
    this.hooks.log.warn({ partnerId: this.hooks.partnerId, limit: what }, 'sftp client over a session bound: requests refused');
    this.hooks.audit('refused', `requests refused: ${what}`);
  }

  private failUpload(handle: Buffer, why: string): void {
    const id = Buffer.isBuffer(handle) && handle.length === 4 ? handle.readUInt32BE(0) : -1;
    const h = this.handles.get(id);
    if (h?.kind === 'upload') h.failed ??= new Error(why);
  }

  private checkHandleRoom(): void {
    if (this.handles.size >= this.limits.maxHandles) {
      this.overloaded(`more than ${this.limits.maxHandles} open handles`);
      throw new Refused(STATUS_CODE.FAILURE, 'too many open handles');
    }
  }

  private newHandle(h: OpenHandle): Buffer {
    const id = this.nextHandle++;
    this.handles.set(id, h);
    const buf = Buffer.alloc(4);
    buf.writeUInt32BE(id);
    return buf;
  }

  private handleOf(buf: Buffer): [number, OpenHandle] {
    const id = buf.length === 4 ? buf.readUInt32BE(0) : -1;
    const h = this.handles.get(id);
    if (!h) throw new Refused(STATUS_CODE.FAILURE, 'invalid handle');
    return [id, h];
  }

  /** A file in a partner folder that is a regular file (never a symlink). */
  private async regularFile(v: VirtualPath & { kind: 'file' }): Promise<Stats> {
    const s = await lstat(v.real);
    if (s.isSymbolicLink()) throw new EscapeRefused(`symbolic link ${v.clientPath}`);
    if (!s.isFile()) throw new NotInTree(`not a file: ${v.clientPath}`);
    return s;
  }

  private async onOpen(reqid: number, filename: string, flags: number): Promise<void> {
    const v = this.resolve(filename);
    if (v.kind !== 'file') throw new Refused(STATUS_CODE.FAILURE, 'not a file');
    this.checkHandleRoom();
    const writing = (flags & (OPEN_MODE.WRITE | OPEN_MODE.APPEND | OPEN_MODE.CREAT | OPEN_MODE.TRUNC)) !== 0;
    if (writing) {
      if (v.area !== 'inbound' || flags & OPEN_MODE.READ || flags & OPEN_MODE.APPEND) {
        throw new Refused(STATUS_CODE.PERMISSION_DENIED, 'uploads go to /inbound, whole files only');
      }
      let landing: Landing;
      try {
        landing = await beginLanding(v.dir, v.name, this.hooks.landingLimits);
      } catch (err) {
        if (!(err instanceof LandingRefused)) throw err;
        this.hooks.audit('refused', `upload of ${v.name}: ${err.message}`);
        this.hooks.log.warn({ partnerId: this.hooks.partnerId, fileName: v.name, reason: err.reason }, 'sftp upload refused');
        throw new Refused(STATUS_CODE.FAILURE, err.message);
      }
      this.sftp.handle(reqid, this.newHandle({ kind: 'upload', name: v.name, landing, pending: new Set(), batch: { offset: 0, length: 0, chunks: [] }, openedAt: Date.now(), held: 0, waiters: [] }));
      return;
    }
    if (v.area !== 'outbound') throw new Refused(STATUS_CODE.PERMISSION_DENIED, 'downloads come from /outbound');
    await this.regularFile(v);
    // O_NOFOLLOW closes the race between the lstat above and the open.
    // Decrypted here, as the bytes leave to the partner (spool/encrypted-file.ts).
    const fh = await openSpoolFile(v.real, FS.O_RDONLY | FS.O_NOFOLLOW);
    if (!fh.isFile) {
      await fh.close();
      throw new NotInTree(`not a file: ${v.clientPath}`);
    }
    this.sftp.handle(reqid, this.newHandle({ kind: 'download', name: v.name, real: v.real, fh, size: fh.size, sent: 0 }));
  }

  private async onWrite(reqid: number, handle: Buffer, offset: number, data: Buffer): Promise<void> {
    const [, h] = this.handleOf(handle);
    if (h.kind !== 'upload') throw new Refused(STATUS_CODE.PERMISSION_DENIED, 'not open for writing');
    if (h.failed) return void this.sftp.status(reqid, STATUS_CODE.FAILURE, h.failed instanceof LandingRefused ? h.failed.message : 'write failed');
    const refusal = h.landing.admit(offset + data.length);
    if (refusal) {
      h.failed = refusal;
      this.hooks.audit('refused', `upload of ${h.name}: ${refusal.message}`);
      this.hooks.log.warn({ partnerId: this.hooks.partnerId, fileName: h.name, reason: refusal.reason }, 'sftp upload refused');
      return void this.sftp.status(reqid, STATUS_CODE.FAILURE, refusal.message);
    }
    if (this.heldWriteBytes + data.length > this.limits.maxBufferedWriteBytes) {
      h.failed = new Error(`more than ${this.limits.maxBufferedWriteBytes} bytes of writes outstanding`);
      this.overloaded(h.failed.message);
      return void this.sftp.status(reqid, STATUS_CODE.FAILURE, 'too many outstanding writes');
    }
    const b = h.batch;
    if (b.length > 0 && offset !== b.offset + b.length) this.flush(h); // not contiguous: write what we have
    if (h.batch.length === 0) h.batch.offset = offset;
    // ssh2 may reuse the packet buffer: keep a copy.
    h.batch.chunks.push(Buffer.from(data));
    h.batch.length += data.length;
    h.held += data.length;
    this.heldWriteBytes += data.length;
    if (h.batch.length >= BATCH_BYTES && h.pending.size < MAX_FLUSHES_IN_FLIGHT) this.flush(h);
    // Backpressure: while the disk is behind, the acknowledgement waits (in order, woken once).
    if (h.held > ACK_HOLD_BYTES) await new Promise<void>((resolve) => h.waiters.push(resolve));
    this.sftp.status(reqid, h.failed ? STATUS_CODE.FAILURE : STATUS_CODE.OK);
  }

  /** Writes the gathered batch at its offset (positional, so batches may finish in any order). */
  private flush(h: OpenHandle & { kind: 'upload' }): void {
    const { offset, chunks, length } = h.batch;
    if (chunks.length === 0) return;
    h.batch = { offset: 0, length: 0, chunks: [] };
    const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    const done = (err?: Error) => {
      if (err) h.failed ??= err;
      h.pending.delete(write);
      h.held -= length;
      this.heldWriteBytes -= length;
      if (h.batch.length >= BATCH_BYTES && h.pending.size < MAX_FLUSHES_IN_FLIGHT) this.flush(h);
      this.releaseAcks(h, false);
    };
    const write: Promise<void> = h.landing.handle.write(data, 0, data.length, offset).then(() => done(), done);
    h.pending.add(write);
  }

  /** Answers the writes that waited for the disk, once it caught up (or at once when ending). */
  private releaseAcks(h: OpenHandle & { kind: 'upload' }, all: boolean): void {
    if (h.waiters.length === 0 || (!all && h.held > ACK_HOLD_BYTES && !h.failed)) return;
    const waiters = h.waiters;
    h.waiters = [];
    for (const wake of waiters) wake();
  }

  private async onRead(reqid: number, handle: Buffer, offset: number, length: number): Promise<void> {
    const [, h] = this.handleOf(handle);
    if (h.kind !== 'download') throw new Refused(STATUS_CODE.PERMISSION_DENIED, 'not open for reading');
    const want = Math.min(length, MAX_READ);
    // Data the client asked for but does not take (its window stays shut) waits in ssh2's buffer:
    // count it, so that a client which stops reading cannot make us hold the file many times over.
    if (this.heldReadBytes + outgoingBacklog(this.sftp) + want > this.limits.maxBufferedReadBytes) {
      this.overloaded(`more than ${this.limits.maxBufferedReadBytes} bytes of reads outstanding`);
      return void this.sftp.status(reqid, STATUS_CODE.FAILURE, 'too many outstanding reads');
    }
    this.heldReadBytes += want;
    try {
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await h.fh.read(buf, 0, buf.length, offset);
      if (bytesRead === 0) return void this.sftp.status(reqid, STATUS_CODE.EOF);
      h.sent += bytesRead;
      this.sftp.data(reqid, buf.subarray(0, bytesRead));
    } finally {
      this.heldReadBytes -= want;
    }
  }

  private async onClose(reqid: number, handle: Buffer): Promise<void> {
    const [id, h] = this.handleOf(handle);
    this.handles.delete(id);
    if (h.kind === 'dir') return void this.sftp.status(reqid, STATUS_CODE.OK);
    if (h.kind === 'download') {
      await h.fh.close();
      const whole = h.sent >= h.size;
      this.hooks.audit('download', `${h.name} ${h.sent} bytes${whole ? '' : ` of ${h.size} (incomplete)`}`);
      if (whole) this.hooks.pickedUp(h.name, h.size);
      return void this.sftp.status(reqid, STATUS_CODE.OK);
    }
    this.flush(h);
    await Promise.allSettled([...h.pending]);
    if (h.failed) {
      await h.landing.abort();
      this.hooks.audit('refused', `upload of ${h.name} aborted: ${h.failed.message}`);
      return void this.sftp.status(reqid, STATUS_CODE.FAILURE, h.failed instanceof LandingRefused ? h.failed.message : 'upload failed');
    }
    try {
      const closedAt = Date.now();
      const { path: finalPath, size } = await h.landing.commit((bytes) => this.hooks.recordUpload(`${h.name} ${bytes} bytes`));
      const timing = { transferMs: closedAt - h.openedAt, commitMs: Date.now() - closedAt };
      this.hooks.log.info({ partnerId: this.hooks.partnerId, fileName: h.name, bytes: size, ...timing }, 'sftp upload landed');
      this.sftp.status(reqid, STATUS_CODE.OK);
      // A client's own temporary (NAME.part, renamed later) is not a delivery yet.
      if (!isTemporaryName(h.name)) this.hooks.landed(finalPath);
    } catch (err) {
      await h.landing.abort();
      throw err;
    }
  }

  private async onFstat(reqid: number, handle: Buffer): Promise<void> {
    const [, h] = this.handleOf(handle);
    if (h.kind === 'dir') return void this.sftp.attrs(reqid, dirAttrs(false));
    const s = await lstat(h.kind === 'upload' ? h.landing.tempPath : h.real);
    this.sftp.attrs(reqid, fileAttrs(s, h.kind === 'upload' ? await spoolFileSize(h.landing.tempPath, s) : h.size));
  }

  private async onStat(reqid: number, p: string): Promise<void> {
    const v = this.resolve(p);
    if (v.kind === 'root') return void this.sftp.attrs(reqid, dirAttrs(false));
    if (v.kind === 'dir') return void this.sftp.attrs(reqid, dirAttrs(v.area === 'inbound'));
    const s = await this.regularFile(v);
    this.sftp.attrs(reqid, fileAttrs(s, await spoolFileSize(v.real, s)));
  }

  /** Times and modes are ours to keep; accept the request (clients send it after uploads) and ignore it. */
  private async onNoop(reqid: number): Promise<void> {
    this.sftp.status(reqid, STATUS_CODE.OK);
  }

  private async onSetstat(reqid: number, p: string): Promise<void> {
    this.resolve(p);
    this.sftp.status(reqid, STATUS_CODE.OK);
  }

  private async onOpendir(reqid: number, p: string): Promise<void> {
    const v = this.resolve(p);
    if (v.kind === 'file') throw new Refused(STATUS_CODE.FAILURE, 'not a folder');
    this.checkHandleRoom();
    let entries: FileEntry[];
    if (v.kind === 'root') {
      entries = (['inbound', 'outbound'] as const).map((area) => {
        const attrs = dirAttrs(area === 'inbound');
        return { filename: area, longname: longname(area, attrs), attrs };
      });
    } else {
      entries = [];
      for (const e of await readdir(v.dir, { withFileTypes: true })) {
        // Only finished regular files: no temporaries, no symlinks, no sub-folders.
        if (!e.isFile() || isTemporaryName(e.name)) continue;
        const s = await lstat(`${v.dir}/${e.name}`).catch(() => undefined);
        if (!s?.isFile()) continue;
        const attrs = fileAttrs(s, await spoolFileSize(`${v.dir}/${e.name}`, s).catch(() => s.size));
        entries.push({ filename: e.name, longname: longname(e.name, attrs), attrs });
      }
    }
    this.sftp.handle(reqid, this.newHandle({ kind: 'dir', entries, done: false }));
  }

  private async onReaddir(reqid: number, handle: Buffer): Promise<void> {
    const [, h] = this.handleOf(handle);
    if (h.kind !== 'dir') throw new Refused(STATUS_CODE.FAILURE, 'not a folder handle');
    if (h.done || h.entries.length === 0) return void this.sftp.status(reqid, STATUS_CODE.EOF);
    h.done = true;
    this.sftp.name(reqid, h.entries);
  }

  private async onRealpath(reqid: number, p: string): Promise<void> {
    const v = this.resolve(p);
    const attrs = v.kind === 'file' ? dirAttrs(false) : dirAttrs(v.kind === 'dir' && v.area === 'inbound');
    this.sftp.name(reqid, [{ filename: v.clientPath, longname: v.clientPath, attrs }]);
  }

  /** Renames inside /inbound only (some clients upload as NAME.filepart, then rename). */
  private async onRename(reqid: number, from: string, to: string): Promise<void> {
    const a = this.resolve(from);
    const b = this.resolve(to);
    if (a.kind !== 'file' || b.kind !== 'file' || a.area !== 'inbound' || b.area !== 'inbound') {
      throw new Refused(STATUS_CODE.PERMISSION_DENIED, 'renames only inside /inbound');
    }
    await this.regularFile(a);
    await recordBeforeAck(() => this.hooks.recordUpload(`${a.name} renamed to ${b.name}`));
    await rename(a.real, b.real);
    this.sftp.status(reqid, STATUS_CODE.OK);
    this.hooks.landed(b.real);
  }

  private async onDenied(reqid: number): Promise<void> {
    this.sftp.status(reqid, STATUS_CODE.PERMISSION_DENIED, 'not allowed');
  }

  private async onSymlink(reqid: number): Promise<void> {
    this.hooks.audit('refused', 'symbolic link request');
    this.sftp.status(reqid, STATUS_CODE.PERMISSION_DENIED, 'symbolic links are not allowed');
  }
}
