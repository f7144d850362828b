// Streaming fixed-width records over bytes, in constant memory: files are read in large chunks and
// each record is handed to a synchronous callback as (buffer, offset), with no copy and no object
// per record. Writers buffer records and write them in large blocks.
import { closeSync, fdatasync } from 'node:fs';
import { fileAccess, type SyncSink } from './file-access.ts';
import type { Framing } from './layouts.ts';

export const EOF_MARK = 0x1a;
export const DEFAULT_CHUNK = 1 << 20;

export const lineEndLength = (framing: Framing): number => (framing === 'crlf' ? 2 : framing === 'lf' ? 1 : 0);

/** The record grid is broken (E101): the record number where it broke and why. */
export interface GridBreak { recordNo: number; detail: string }

export interface ReadResult { records: number; bytes: number; gridBreak: GridBreak | null }

/** Called once per record; `buf` is only valid during the call. */
export type RecordHandler = (buf: Buffer, off: number, recordNo: number) => void;

export interface ReadOptions {
  recordLength: number;
  framing: Framing;
  chunkSize?: number;
  /** Runs after each chunk's records, e.g. to let writers flush; awaited before the next read. */
  afterChunk?: () => Promise<void> | void;
}

/** A buffer on its own ArrayBuffer (byteOffset 0), so that word views of it are aligned. */
export const alignedBuffer = (size: number): Buffer => Buffer.from(new ArrayBuffer(size + 8), 0, size);

/**
 * Reads every record of a file; stops at the first break of the record grid. Without `afterChunk`
 * the next chunk is read (by the thread pool) while the records of the current one are handled.
 */
export async function readRecords(path: string, opts: ReadOptions, onRecord: RecordHandler): Promise<ReadResult> {
  const L = opts.recordLength;
  const eol = lineEndLength(opts.framing);
  const stride = L + eol;
  const chunk = Math.max(opts.chunkSize ?? DEFAULT_CHUNK, stride);
  const afterChunk = opts.afterChunk;
  // two buffers: records of one are handled while the other is filled; each starts with the
  // carried-over part record of the previous chunk
  let buf = alignedBuffer(chunk + stride);
  let next = afterChunk ? buf : alignedBuffer(chunk + stride);
  const fh = await fileAccess().openRead(path);
  let have = 0;
  let recordNo = 0;
  let bytes = 0;
  let pending: Promise<{ bytesRead: number }> | null = fh.read(buf, 0, chunk, null);
  const lineEndOk = (b: Buffer, off: number): boolean =>
    eol === 0 || (eol === 2 ? b[off + L] === 0x0d && b[off + L + 1] === 0x0a : b[off + L] === 0x0a);
  const describeLineEnd = (b: Buffer, off: number): string => {
    const found = b.subarray(off + L, off + stride).toString('hex');
    return `record ${recordNo} does not end with ${opts.framing.toUpperCase()} after ${L} bytes (found 0x${found}): wrong record length or mixed line ends`;
  };
  try {
    for (;;) {
      const { bytesRead } = await pending!;
      pending = null;
      bytes += bytesRead;
      have += bytesRead;
      const eof = bytesRead === 0;
      const whole = have - (have % stride);
      const rest = have - whole;
      if (!eof && !afterChunk) {
        // carry the part record over and start the next read before handling this chunk
        if (rest > 0) buf.copy(next, 0, whole, have);
        pending = fh.read(next, rest, chunk, null);
      }
      let off = 0;
      while (off < whole) {
        recordNo++;
        if (!lineEndOk(buf, off)) return { records: recordNo - 1, bytes, gridBreak: { recordNo, detail: describeLineEnd(buf, off) } };
        onRecord(buf, off, recordNo);
        off += stride;
      }
      if (eof) {
        if (rest === 0 || (rest === 1 && buf[off] === EOF_MARK)) return { records: recordNo, bytes, gridBreak: null };
        // A last record without its line end (and maybe the EOF mark) still sits on the grid.
        if (eol > 0 && (rest === L || (rest === L + 1 && buf[off + L] === EOF_MARK))) {
          onRecord(buf, off, ++recordNo);
          return { records: recordNo, bytes, gridBreak: null };
        }
        return { records: recordNo, bytes, gridBreak: { recordNo: recordNo + 1, detail: `file ends with ${rest} bytes that are not a whole ${L}-byte record` } };
      }
      if (afterChunk) {
        if (rest > 0) buf.copy(buf, 0, whole, have);
        await afterChunk();
        pending = fh.read(buf, rest, chunk, null);
      } else {
        const t = buf;
        buf = next;
        next = t;
      }
      have = rest;
    }
  } finally {
    if (pending) await pending.catch(() => undefined);
    await fh.close();
  }
}

/** Bytes written to a file after which its data is pushed to disk in the background. */
const EARLY_SYNC_BYTES = 16 * 1024 * 1024;
/** Background syncs at once, across writers (they hold thread-pool threads, which reads need too). */
const MAX_EARLY_SYNCS = 2;
let earlySyncs = 0;

/**
 * Buffered writer of fixed-width records with the partner's framing, at `path` (encrypted when
 * `path` is in a spool that encrypts: formats/file-access.ts).
 * Large files are synced to disk in the background as they grow (fdatasync on the thread pool),
 * so that the fsync of close() has little left to wait for.
 */
export class RecordFileWriter {
  private readonly sink: SyncSink;
  private readonly fd: number;
  private readonly buf: Buffer;
  private used = 0;
  private readonly eolLength: number;
  private readonly eol0: number;
  private readonly eol1: number;
  bytesWritten = 0;
  records = 0;
  private unsynced = 0;
  private syncing = false;
  private closeAfterSync = false;

  /** `durable: false` for a scratch file that a crash makes again anyway: no fsync at all. */
  constructor(readonly path: string, framing: Framing, bufferSize = 256 * 1024, private readonly durable = true) {
    this.sink = fileAccess().openWriteSync(path);
    this.fd = this.sink.fd;
    this.buf = alignedBuffer(bufferSize);
    this.eolLength = lineEndLength(framing);
    this.eol0 = framing === 'crlf' ? 0x0d : 0x0a;
    this.eol1 = 0x0a;
  }

  /**
   * Room for one record of `len` bytes in the write buffer: returns the offset in `buffer` to fill
   * in place (saves a copy), then call commit(len).
   */
  reserve(len: number): number {
    if (this.used + len + this.eolLength > this.buf.length) this.flush();
    if (len + this.eolLength > this.buf.length) throw new Error('record larger than the write buffer');
    return this.used;
  }

  get buffer(): Buffer {
    return this.buf;
  }

  commit(len: number): void {
    const b = this.buf;
    let u = this.used + len;
    if (this.eolLength === 2) { b[u] = this.eol0; b[u + 1] = this.eol1; u += 2; }
    else if (this.eolLength === 1) b[u++] = this.eol0;
    this.used = u;
    this.records++;
  }

  write(src: Buffer, off = 0, len = src.length - off): void {
    if (this.used + len + this.eolLength > this.buf.length) this.flush();
    if (len + this.eolLength > this.buf.length) {
      this.writeAll(src.subarray(off, off + len));
      if (this.eolLength > 0) this.writeAll(Buffer.from(this.eolLength === 2 ? [this.eol0, this.eol1] : [this.eol0]));
      this.records++;
      return;
    }
    this.buf.set(off === 0 && len === src.length ? src : src.subarray(off, off + len), this.used);
    this.commit(len);
  }

  private writeAll(b: Buffer): void {
    this.sink.write(b);
    this.bytesWritten += b.length;
    this.unsynced += b.length;
    if (this.durable && this.unsynced >= EARLY_SYNC_BYTES && !this.syncing && earlySyncs < MAX_EARLY_SYNCS) {
      this.unsynced = 0;
      this.syncing = true;
      earlySyncs++;
      fdatasync(this.fd, () => {
        // errors here are not lost: close() syncs again, synchronously, and throws
        earlySyncs--;
        this.syncing = false;
        if (this.closeAfterSync) this.closeFd();
      });
    }
  }

  /** Closes the descriptor, or once a background sync on it is over. */
  private closeFd(): void {
    if (this.syncing) { this.closeAfterSync = true; return; }
    this.closeAfterSync = false;
    try { closeSync(this.fd); } catch { /* already closed */ }
  }

  flush(): void {
    if (this.used > 0) this.writeAll(this.buf.subarray(0, this.used));
    this.used = 0;
  }

  /** Flushes, fsyncs (unless the caller's publishing does: `sync: false`) and closes; the caller publishes the file atomically. */
  close(options: { sync?: boolean } = {}): void {
    this.flush();
    this.sink.finish(this.durable && options.sync !== false);
    if (this.syncing) this.closeFd();
    else closeSync(this.fd);
  }

  /** Closes without flushing (on failure; the caller removes the file). */
  abandon(): void {
    this.closeFd();
  }
}
