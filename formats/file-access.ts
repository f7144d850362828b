// How the formats engine opens the files it reads and writes. Plain files by default; the spool
// plugs in its encryption at rest (spool/encrypted-file.ts) when a centre with keys opens, so the
// engine reads and writes plaintext without knowing whether the disk holds it encrypted. The
// engine itself never imports the spool (dependencies point one way).
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';

/** Positional reads of plaintext, in FileHandle's shape (position null: read on). */
export interface ReadHandle {
  read(buf: Buffer, off: number, len: number, pos: number | null): Promise<{ bytesRead: number }>;
  /** Plaintext bytes start..end inclusive, then closes the handle. */
  createReadStream(opts?: { start?: number; end?: number; highWaterMark?: number }): Readable;
  close(): Promise<void>;
}

/** A file being written synchronously: `fd` stays valid for background fdatasync until closed. */
export interface SyncSink {
  readonly fd: number;
  write(b: Buffer): void;
  /** Everything is written (and, when `durable`, on disk: fsync); the descriptor stays open. */
  finish(durable?: boolean): void;
}

export interface FileAccess {
  openRead(file: string): Promise<ReadHandle>;
  openWriteSync(file: string): SyncSink;
  /** Size of the file's content (for an encrypted file: its plaintext). */
  plainSize(file: string): Promise<number>;
}

class PlainSink implements SyncSink {
  readonly fd: number;
  constructor(file: string) {
    this.fd = openSync(file, 'w', 0o600);
  }
  write(b: Buffer): void {
    let done = 0;
    while (done < b.length) done += writeSync(this.fd, b, done, b.length - done);
  }
  finish(durable = true): void {
    if (durable) fsyncSync(this.fd);
  }
}

export const plainFileAccess: FileAccess = {
  async openRead(file) {
    const fh = await open(file, 'r');
    return {
      read: (buf, off, len, pos) => fh.read(buf, off, len, pos),
      createReadStream: (opts = {}) => fh.createReadStream({ ...opts, autoClose: true }),
      close: () => fh.close(),
    };
  },
  openWriteSync: (file) => new PlainSink(file),
  plainSize: async (file) => (await stat(file)).size,
};

let current: FileAccess = plainFileAccess;

export function setFileAccess(access: FileAccess): void {
  current = access;
}

export function fileAccess(): FileAccess {
  return current;
}

/** Closes a sink's descriptor (a helper so writers need not import node:fs for it). */
export function closeSink(sink: SyncSink): void {
  closeSync(sink.fd);
}
