// Partly received files, kept for 再送要求 outside the partner's inbound folder (under the spool's
// work folder), so that nothing half-received is ever visible to ingest. A partial is keyed by
// partner + file name + access key + the counts announced in 開始要求, and holds only complete data
// messages; the count it reports is what the restart answer offers (from = held + 1).
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile, copyFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { assertPartnerId } from '../../spool/tree.ts';
import { EncryptedFileReader, EncryptedFileWriter, keyRingFor } from '../../spool/encrypted-file.ts';
import { backgroundSha256, type RunningHash } from './background-hash.ts';

/**
 * Where a partial's bytes go: the plain file, or (when the spool encrypts) an encrypted file that
 * keeps its unfinished last chunk on disk at every suspend, so a 再送要求 can resume it.
 */
interface PartialSink {
  writeAt(parts: Buffer[], at: number): Promise<void>;
  /** What was written so far starts going to disk (a checkpoint while the file still grows); may do nothing. */
  datasync(): Promise<void>;
  /** What was written is on disk, to be resumed later. */
  suspend(): Promise<void>;
  /** The file is complete: finish it for its hand-over. */
  complete(): Promise<void>;
  close(): Promise<void>;
}

function plainSink(handle: FileHandle): PartialSink {
  return {
    writeAt: (parts, at) => writeAllAt(handle, parts, at),
    datasync: () => handle.datasync(),
    suspend: () => handle.sync(),
    complete: () => handle.sync(),
    close: () => handle.close(),
  };
}

function encryptedSink(w: EncryptedFileWriter): PartialSink {
  return {
    writeAt: async (parts, at) => {
      for (const b of parts) {
        await w.write(b, 0, b.length, at);
        at += b.length;
      }
    },
    // A checkpoint of an encrypted file rewrites its sealed tail: only at suspend.
    datasync: async () => undefined,
    suspend: () => w.checkpoint(),
    complete: async () => {
      await w.finish();
    },
    close: () => w.close(),
  };
}

export interface PartialKey {
  partnerId: string;
  fileName: string;
  accessKey: string;
  textCount: number;
  recordCount: number;
  recordLength: number;
}

interface PartialMeta {
  /** Payload bytes of every data message but the last (set by message 1). */
  fullPayload: number;
}

export class PartialBusyError extends Error {}

const BATCH = 2 << 20;
/**
 * Batch buffers per file: one fills while the others are written (in order, one at a time) and
 * hashed; the receiving waits only when all are busy, so a late thread-pool or hash-worker turn
 * (a loaded machine) does not stop it.
 */
const RING = 4;
/**
 * A received file is synced in the background every this many bytes while it grows, so that the
 * fsync before 終了回答 has little left to write (and a checkpoint survives a power loss, not only
 * a crash of the process). The Linux page cache would otherwise hold a 1 GiB file unwritten until
 * that fsync: its dirty limits are a share of RAM.
 */
export const CHECKPOINT_BYTES = 32 << 20;

interface Holder {
  /** Ends the session that holds the partial (a newer session for the same file takes over). */
  preempt: () => void;
  released: Promise<void>;
  release: () => void;
}

/** Where a spool keeps 全銀 partial files. */
export function partialsRoot(workDir: string): string {
  return path.join(workDir, 'zengin-partial');
}

export class RestartStore {
  private readonly busy = new Map<string, Holder>();

  constructor(readonly root: string) {}

  /** Removes partial files nobody resumed within `maxAgeMs` (the sender gave up); returns how many. */
  async purgeOlderThan(maxAgeMs: number, now = Date.now()): Promise<number> {
    let removed = 0;
    let partners: string[];
    try {
      partners = await readdir(this.root);
    } catch {
      return 0;
    }
    for (const partner of partners) {
      const dir = path.join(this.root, partner);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const p = path.join(dir, name);
        const s = await stat(p).catch(() => undefined);
        if (s?.isFile() && now - s.mtimeMs > maxAgeMs) {
          await rm(p, { force: true });
          removed++;
        }
      }
    }
    return removed;
  }

  private paths(key: PartialKey): { data: string; meta: string; id: string } {
    assertPartnerId(key.partnerId);
    const id = `${key.fileName}_${key.accessKey}_${key.textCount}_${key.recordCount}_${key.recordLength}`;
    const dir = path.join(this.root, key.partnerId);
    return { data: path.join(dir, `${id}.data`), meta: path.join(dir, `${id}.json`), id: `${key.partnerId}/${id}` };
  }

  /**
   * Opens the partial for `key`: `fresh` throws away what is held (開始要求), else resumes (再送要求).
   * A session still holding it (the broken connection not yet noticed) is ended first: the newer
   * session is the sender's restart. `preempt` is how this session can be ended in turn.
   */
  async open(key: PartialKey, fresh: boolean, preempt: () => void): Promise<PartialFile> {
    const p = this.paths(key);
    const old = this.busy.get(p.id);
    if (old) {
      old.preempt();
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 10_000).unref());
      if ((await Promise.race([old.released, timeout])) === 'timeout' || this.busy.has(p.id)) {
        throw new PartialBusyError(`${p.id} is being received by another session`);
      }
    }
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const holder: Holder = { preempt, released, release };
    this.busy.set(p.id, holder);
    const free = () => {
      if (this.busy.get(p.id) === holder) this.busy.delete(p.id);
      holder.release();
    };
    let hash: RunningHash | undefined;
    try {
      await mkdir(path.dirname(p.data), { recursive: true, mode: 0o700 });
      let meta: PartialMeta | null = null;
      let size = 0;
      const ring = keyRingFor(p.data);
      if (!fresh) {
        meta = await readFile(p.meta, 'utf8').then((s) => JSON.parse(s) as PartialMeta).catch(() => null);
        size = ring
          ? await EncryptedFileReader.open(p.data, ring, undefined, { unfinished: true }).then(async (r) => {
              try {
                return await r.authenticPrefix();
              } finally {
                await r.close();
              }
            }, () => 0)
          : await stat(p.data).then((s) => s.size).catch(() => 0);
      }
      let held = 0;
      const total = key.recordCount * key.recordLength;
      if (meta && meta.fullPayload > 0 && size > 0) {
        held = total > 0 && size === total && key.textCount > 0 ? key.textCount : Math.floor(size / meta.fullPayload);
        if (key.textCount > 0) held = Math.min(held, key.textCount);
      } else {
        meta = null;
      }
      const bytes = held === 0 ? 0 : held === key.textCount && size === total ? total : held * meta!.fullPayload;
      let sink: PartialSink;
      hash = backgroundSha256();
      if (ring) {
        if (bytes > 0) {
          const r = await EncryptedFileReader.open(p.data, ring, undefined, { unfinished: true });
          for await (const chunk of r.createReadStream({ start: 0, end: bytes - 1, highWaterMark: 1 << 20 })) await hash.update(chunk as Buffer);
        }
        // A torn last message (crash mid-write) is cut off: only complete messages count.
        sink = encryptedSink(bytes > 0 ? await EncryptedFileWriter.resume(p.data, ring, bytes) : await EncryptedFileWriter.create(p.data, ring, { flag: 'w' }));
      } else {
        const handle = await open(p.data, fresh || held === 0 ? 'w' : 'r+', 0o600);
        // A torn last message (crash mid-write) is cut off: only complete messages count.
        await handle.truncate(bytes);
        if (bytes > 0) for await (const chunk of createReadStream(p.data, { start: 0, end: bytes - 1, highWaterMark: 1 << 20 })) await hash.update(chunk as Buffer);
        sink = plainSink(handle);
      }
      if (held === 0) await rm(p.meta, { force: true });
      return new PartialFile(key, p.data, p.meta, sink, held, bytes, meta?.fullPayload ?? null, hash, free);
    } catch (err) {
      hash?.drop();
      free();
      throw err;
    }
  }
}

export class PartialFile {
  /**
   * The batch being filled. The message bytes are copied in, so the socket's chunks die young:
   * kept until their batch was written, they outlived the young generation and ended in full
   * garbage collections.
   */
  private batch: Buffer | null = null;
  private batchBytes = 0;
  private buffers = 0;
  /** Batches being written and hashed, oldest first; each resolves with its buffer, to be reused. */
  private inFlight: Promise<Buffer>[] = [];
  /** The last write: each waits for the one before, so the file never has a hole. */
  private writes: Promise<void> = Promise.resolve();
  /** The background checkpoint sync in flight, if any. */
  private syncing: Promise<unknown> | null = null;
  private unsynced = 0;
  private digested = false;
  private lastShort = false;
  private released = false;
  /** File offset of the next batch write. */
  private writeAt: number;

  constructor(
    readonly key: PartialKey,
    private readonly dataPath: string,
    private readonly metaPath: string,
    private readonly handle: PartialSink,
    /** Complete data messages held. */
    public heldTexts: number,
    /** Bytes held (written or batched). */
    public bytes: number,
    private fullPayload: number | null,
    private readonly hash: RunningHash,
    private readonly release: () => void,
  ) {
    this.writeAt = bytes;
  }

  get records(): number {
    return this.bytes / this.key.recordLength;
  }

  /**
   * Takes data message `seq`'s payload, `length` bytes in `parts` (the caller checked seq and
   * record boundaries). Returns an error text when its size breaks the rule that every message
   * but the last carries the same number of records.
   */
  async append(parts: Buffer[], length: number): Promise<string | null> {
    if (this.lastShort) return 'a data message after a shorter (last) one';
    if (this.fullPayload === null) {
      this.fullPayload = length;
      await writeFile(this.metaPath, JSON.stringify({ fullPayload: length } satisfies PartialMeta), { mode: 0o600 });
    } else if (length > this.fullPayload) {
      return `data message of ${length} bytes after messages of ${this.fullPayload}`;
    } else if (length < this.fullPayload) {
      this.lastShort = true;
    }
    if (this.batch && this.batchBytes + length > this.batch.length) await this.writeBatch();
    // The announced size bounds the buffers of a small file.
    const total = this.key.recordCount * this.key.recordLength;
    // A buffer of its own memory: handed to the hash worker (and back) without a copy.
    if (!this.batch) {
      this.batch = Buffer.allocUnsafeSlow(Math.max(length, total > 0 ? Math.min(BATCH, total) : BATCH));
      this.buffers++;
    }
    for (const part of parts) {
      this.batch.set(part, this.batchBytes);
      this.batchBytes += part.length;
    }
    this.bytes += length;
    this.heldTexts++;
    return null;
  }

  /** Queues the batch's write and hash; then takes a free buffer, waiting for the oldest batch when all are busy. */
  private async writeBatch(): Promise<void> {
    const full = this.batch!;
    const view = full.subarray(0, this.batchBytes);
    this.batch = null;
    this.batchBytes = 0;
    const at = this.writeAt;
    this.writeAt += view.length;
    this.unsynced += view.length;
    const write = this.writes.then(() => this.handle.writeAt([view], at));
    this.writes = write;
    // Hashed once written (the worker then holds the buffer); the next batch fills meanwhile.
    const length = view.length;
    const done = write.then(() => this.hash.updateOwned(full, length));
    done.catch(() => undefined); // awaited by flush; this only stops an unhandled rejection
    this.inFlight.push(done);
    if (this.unsynced >= CHECKPOINT_BYTES && !this.syncing) {
      // Not awaited here: the receiving goes on while the disk writes (errors: the final sync throws).
      this.unsynced = 0;
      this.syncing = write
        .then(() => this.handle.datasync())
        .catch(() => undefined)
        .finally(() => (this.syncing = null));
    }
    if (this.buffers < RING) return;
    this.batch = await this.inFlight.shift()!;
  }

  async flush(): Promise<void> {
    if (this.batchBytes > 0) await this.writeBatch();
    await Promise.all(this.inFlight);
    await this.syncing;
  }

  /** The SHA-256 of the whole file (after flush; nothing is appended after it). */
  async digest(): Promise<string> {
    this.digested = true;
    return this.hash.digest();
  }

  /** Keeps what was received for a later 再送要求. */
  async suspend(): Promise<void> {
    try {
      await this.flush();
      await this.handle.suspend();
    } finally {
      await this.closeHandle();
    }
  }

  async discard(): Promise<void> {
    await Promise.all(this.inFlight).catch(() => undefined);
    await this.syncing;
    await this.closeHandle();
    await rm(this.dataPath, { force: true });
    await rm(this.metaPath, { force: true });
  }

  /** Moves the complete file to `target` (a landing's temporary path, same file system as a rule). */
  async handOver(target: string): Promise<void> {
    await this.flush();
    await this.handle.complete();
    await this.closeHandle();
    try {
      await rename(this.dataPath, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      await copyFile(this.dataPath, target);
      await rm(this.dataPath, { force: true });
    }
    await rm(this.metaPath, { force: true });
  }

  private async closeHandle(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (!this.digested) this.hash.drop();
    await this.handle.close().catch(() => undefined);
    this.release();
  }
}

/** writev until every byte is written (a short write resumes where it stopped). */
async function writeAllAt(handle: FileHandle, parts: Buffer[], at: number): Promise<void> {
  let rest = parts;
  while (rest.length > 0) {
    let { bytesWritten } = await handle.writev(rest, at);
    at += bytesWritten;
    const next: Buffer[] = [];
    for (const b of rest) {
      if (bytesWritten >= b.length) bytesWritten -= b.length;
      else {
        next.push(bytesWritten > 0 ? b.subarray(bytesWritten) : b);
        bytesWritten = 0;
      }
    }
    rest = next;
  }
}
