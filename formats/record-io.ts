// Streaming fixed-width records over bytes, in constant memory: files are read in large chunks and
// each record is handed to a synchronous callback as (buffer, offset), with no copy and no object
// per record. Writers buffer records and write them in large blocks.
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
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

/** Reads every record of a file; stops at the first break of the record grid. */
export async function readRecords(path: string, opts: ReadOptions, onRecord: RecordHandler): Promise<ReadResult> {
  const L = opts.recordLength;
  const eol = lineEndLength(opts.framing);
  const stride = L + eol;
  const chunk = Math.max(opts.chunkSize ?? DEFAULT_CHUNK, stride);
  const buf = Buffer.allocUnsafe(chunk + stride);
  const fh = await open(path, 'r');
  let have = 0;
  let recordNo = 0;
  let bytes = 0;
  const lineEndOk = (off: number): boolean =>
    eol === 0 || (eol === 2 ? buf[off + L] === 0x0d && buf[off + L + 1] === 0x0a : buf[off + L] === 0x0a);
  const describeLineEnd = (off: number): string => {
    const found = buf.subarray(off + L, off + stride).toString('hex');
    return `record ${recordNo} does not end with ${opts.framing.toUpperCase()} after ${L} bytes (found 0x${found}): wrong record length or mixed line ends`;
  };
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, have, chunk, null);
      bytes += bytesRead;
      have += bytesRead;
      let off = 0;
      const eof = bytesRead === 0;
      while (have - off >= stride) {
        recordNo++;
        if (!lineEndOk(off)) return { records: recordNo - 1, bytes, gridBreak: { recordNo, detail: describeLineEnd(off) } };
        onRecord(buf, off, recordNo);
        off += stride;
      }
      if (eof) {
        const rest = have - off;
        if (rest === 0 || (rest === 1 && buf[off] === EOF_MARK)) return { records: recordNo, bytes, gridBreak: null };
        // A last record without its line end (and maybe the EOF mark) still sits on the grid.
        if (eol > 0 && (rest === L || (rest === L + 1 && buf[off + L] === EOF_MARK))) {
          onRecord(buf, off, ++recordNo);
          return { records: recordNo, bytes, gridBreak: null };
        }
        return { records: recordNo, bytes, gridBreak: { recordNo: recordNo + 1, detail: `file ends with ${rest} bytes that are not a whole ${L}-byte record` } };
      }
      if (off > 0) {
        buf.copy(buf, 0, off, have);
        have -= off;
      }
      if (opts.afterChunk) await opts.afterChunk();
    }
  } finally {
    await fh.close();
  }
}

/** Buffered writer of fixed-width records with the partner's framing; plain file at `path`. */
export class RecordFileWriter {
  private readonly fd: number;
  private readonly buf: Buffer;
  private used = 0;
  private readonly eol: Buffer;
  bytesWritten = 0;
  records = 0;

  constructor(readonly path: string, framing: Framing, bufferSize = 256 * 1024) {
    this.fd = openSync(path, 'w');
    this.buf = Buffer.allocUnsafe(bufferSize);
    this.eol = Buffer.from(framing === 'crlf' ? '\r\n' : framing === 'lf' ? '\n' : '', 'latin1');
  }

  /**
   * Room for one record of `len` bytes in the write buffer: returns [buffer, offset] to fill in
   * place (saves a copy), then call commit(len).
   */
  reserve(len: number): number {
    if (this.used + len + this.eol.length > this.buf.length) this.flush();
    if (len + this.eol.length > this.buf.length) throw new Error('record larger than the write buffer');
    return this.used;
  }

  get buffer(): Buffer {
    return this.buf;
  }

  commit(len: number): void {
    this.used += len;
    this.eol.copy(this.buf, this.used);
    this.used += this.eol.length;
    this.records++;
  }

  write(src: Buffer, off = 0, len = src.length - off): void {
    if (this.used + len + this.eol.length > this.buf.length) this.flush();
    if (len + this.eol.length > this.buf.length) {
      this.writeAll(src.subarray(off, off + len));
      this.writeAll(this.eol);
    } else {
      src.copy(this.buf, this.used, off, off + len);
      this.used += len;
      this.eol.copy(this.buf, this.used);
      this.used += this.eol.length;
    }
    this.records++;
  }

  private writeAll(b: Buffer): void {
    let done = 0;
    while (done < b.length) done += writeSync(this.fd, b, done, b.length - done);
    this.bytesWritten += b.length;
  }

  flush(): void {
    if (this.used > 0) this.writeAll(this.buf.subarray(0, this.used));
    this.used = 0;
  }

  /** Flushes, fsyncs and closes; the caller publishes the file atomically. */
  close(): void {
    this.flush();
    fsyncSync(this.fd);
    closeSync(this.fd);
  }

  /** Closes without flushing (on failure; the caller removes the file). */
  abandon(): void {
    try { closeSync(this.fd); } catch { /* already closed */ }
  }
}
