// Spool files encrypted at rest (PCI DSS 3.4/3.5): the one module that knows the format, and the
// one place that opens spool files for record bytes. Every other module asks it for a reader or a
// writer and gets plaintext bytes, whether the file on disk is encrypted or (written before
// encryption was configured) plain.
//
// Format (all integers big-endian):
//   header, 166 bytes:
//     magic 8 bytes "\x89TSNG\r\n\x1a" (not text, so no record file starts like this)
//     version 1 byte (1), chunk size as log2 1 byte, reserved 2 bytes (0),
//     salt 16 bytes (random per file),
//     two wrapped-key slots of 69 bytes (spool/keys.ts: version, KEK id, iv, key, tag; a slot of
//     zeros is empty). Two slots make a KEK rotation crash-safe without rewriting data: the new
//     wrap goes into the free slot and is synced before the old slot is cleared.
//   chunks: nonce 12 bytes | AES-256-GCM ciphertext of up to `chunk size` plaintext bytes | tag 16.
//     Every chunk holds exactly `chunk size` bytes except the last, which carries the final flag
//     (an empty file is one empty final chunk). The associated data of chunk i is the header's
//     first 28 bytes (magic .. salt) + i as 8 bytes + the final flag: a chunk moved to another
//     place or file, a dropped last chunk (truncation) or a reordered pair fails authentication.
//     The nonce is random per chunk write, not derived from the index: a 全銀 partial file rewrites
//     its last, unfinished chunk at every checkpoint, and a derived nonce would then repeat.
// Plain size follows from the file size alone, so a reader can seek to any plaintext offset: it
// reads and authenticates only the chunks that hold the range.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { closeSync, constants as FS, fsyncSync, openSync, writeSync, writevSync, type Stats } from 'node:fs';
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setFileAccess, plainFileAccess, type ReadHandle, type SyncSink } from '../formats/file-access.ts';
import { KeyError, KeyRing, WRAPPED_KEY_BYTES, unwrapDataKey, wrapDataKey, wrappedKekId, newDataKey } from './keys.ts';
import { fsyncDir, temporaryPathFor } from './atomic.ts';

export const MAGIC = Buffer.from([0x89, 0x54, 0x53, 0x4e, 0x47, 0x0d, 0x0a, 0x1a]);
const VERSION = 1;
const SALT_BYTES = 16;
const AAD_HEADER_BYTES = 8 + 1 + 1 + 2 + SALT_BYTES; // 28: magic .. salt
const SLOT_A = AAD_HEADER_BYTES;
const SLOT_B = SLOT_A + WRAPPED_KEY_BYTES;
export const HEADER_BYTES = SLOT_B + WRAPPED_KEY_BYTES; // 166
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const CHUNK_OVERHEAD = NONCE_BYTES + TAG_BYTES;
export const DEFAULT_CHUNK_LOG2 = 16; // 64 KiB of plaintext per chunk

/** A spool file that cannot be read: tampered, truncated, or its key is not loaded. Names the file. */
export class EncryptedFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}

interface Header {
  head: Buffer; // the 28 authenticated header bytes
  chunkSize: number;
  salt: Buffer;
  slots: [Buffer, Buffer];
}

const wrapContext = (salt: Buffer) => `spool-file:${salt.toString('hex')}`;
const slotEmpty = (slot: Buffer) => slot[0] === 0;

function newHeader(ring: KeyRing, chunkLog2: number): { header: Buffer; dataKey: Buffer; parsed: Header } {
  const salt = randomBytes(SALT_BYTES);
  const dataKey = newDataKey();
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header[8] = VERSION;
  header[9] = chunkLog2;
  salt.copy(header, 12);
  wrapDataKey(ring.current, dataKey, wrapContext(salt)).copy(header, SLOT_A);
  return { header, dataKey, parsed: parseHeader(header, '(new)') };
}

function parseHeader(buf: Buffer, file: string): Header {
  if (buf.length < HEADER_BYTES || !buf.subarray(0, 8).equals(MAGIC)) throw new EncryptedFileError(file, 'not an encrypted spool file (header missing or cut short)');
  if (buf[8] !== VERSION) throw new EncryptedFileError(file, `encrypted file version ${buf[8]} is not known`);
  const log2 = buf[9]!;
  if (log2 < 10 || log2 > 24) throw new EncryptedFileError(file, `chunk size 2^${log2} is out of range`);
  return {
    head: Buffer.from(buf.subarray(0, AAD_HEADER_BYTES)),
    chunkSize: 1 << log2,
    salt: Buffer.from(buf.subarray(12, 12 + SALT_BYTES)),
    slots: [Buffer.from(buf.subarray(SLOT_A, SLOT_B)), Buffer.from(buf.subarray(SLOT_B, HEADER_BYTES))],
  };
}

/**
 * Unwrapped data keys per ring, by salt and slot (both fixed for a file until a rotation rewrites
 * its slot): a file is opened several times on its way through a cycle (sniff, validate, split,
 * checksum, push), and each open would otherwise unwrap again. Per ring, and only for a KEK the
 * ring still holds (checked before the cache), so a key removed from the ring still refuses.
 */
const unwrappedKeys = new WeakMap<KeyRing, Map<string, Buffer>>();
const UNWRAPPED_KEYS_KEPT = 1024;

function unwrapCached(ring: KeyRing, slot: Buffer, salt: Buffer): Buffer {
  let cache = unwrappedKeys.get(ring);
  if (!cache) unwrappedKeys.set(ring, (cache = new Map()));
  const id = salt.toString('latin1') + slot.toString('latin1');
  const hit = cache.get(id);
  if (hit) return hit;
  const key = unwrapDataKey(ring, slot, wrapContext(salt));
  if (cache.size >= UNWRAPPED_KEYS_KEPT) cache.delete(cache.keys().next().value!);
  cache.set(id, key);
  return key;
}

/** The data key from whichever slot a loaded KEK unwraps. */
function dataKeyOf(h: Header, ring: KeyRing, file: string): { key: Buffer; slot: number } {
  const tried: string[] = [];
  for (let i = 0; i < 2; i++) {
    const slot = h.slots[i]!;
    if (slotEmpty(slot)) continue;
    let id: string;
    try {
      id = wrappedKekId(slot);
    } catch {
      continue;
    }
    tried.push(id);
    if (!ring.get(id)) continue;
    try {
      return { key: unwrapCached(ring, slot, h.salt), slot: i };
    } catch (err) {
      throw new EncryptedFileError(file, `data key does not authenticate: ${(err as Error).message}`);
    }
  }
  throw new EncryptedFileError(file, tried.length ? `wrapped by key-encryption key ${tried.join(' / ')}, which is not loaded (add it to encryption.retired)` : 'no wrapped data key in the header');
}

/**
 * The associated data of a chunk, in one buffer per thread: setAAD consumes it at once, so it is
 * free again as soon as the call returns (no allocation per chunk).
 */
const aadScratch = Buffer.alloc(AAD_HEADER_BYTES + 9);
function chunkAad(h: Header, index: number, final: boolean): Buffer {
  h.head.copy(aadScratch, 0);
  aadScratch.writeUInt32BE(Math.floor(index / 2 ** 32), AAD_HEADER_BYTES);
  aadScratch.writeUInt32BE(index >>> 0, AAD_HEADER_BYTES + 4);
  aadScratch[AAD_HEADER_BYTES + 8] = final ? 1 : 0;
  return aadScratch;
}

/**
 * Random nonces cut from one randomBytes call of 4 KiB (341 of them) rather than one call per
 * chunk. Each nonce is still fresh random bytes from the CSPRNG, used once: a used pool is
 * dropped, never refilled in place, since a nonce may still wait in a queued write.
 */
const NONCE_POOL_BYTES = NONCE_BYTES * 341;
let noncePool = Buffer.alloc(0);
let nonceAt = 0;
function freshNonce(): Buffer {
  if (nonceAt + NONCE_BYTES > noncePool.length) {
    noncePool = randomBytes(NONCE_POOL_BYTES);
    nonceAt = 0;
  }
  const nonce = noncePool.subarray(nonceAt, nonceAt + NONCE_BYTES);
  nonceAt += NONCE_BYTES;
  return nonce;
}

/** A sealed chunk as the parts it is written from (nonce, ciphertext, tag): no copy to join them. */
function sealChunk(h: Header, key: Buffer, index: number, plain: Buffer, final: boolean): Buffer[] {
  const nonce = freshNonce();
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(chunkAad(h, index, final));
  const body = c.update(plain);
  c.final();
  return [nonce, body, c.getAuthTag()];
}

function openChunk(h: Header, key: Buffer, index: number, sealed: Buffer, final: boolean, file: string): Buffer {
  if (sealed.length < CHUNK_OVERHEAD) throw new EncryptedFileError(file, `chunk ${index} is cut short (truncated file)`);
  const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, NONCE_BYTES));
  d.setAAD(chunkAad(h, index, final));
  d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const plain = d.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES));
  try {
    d.final();
  } catch {
    throw new EncryptedFileError(file, final ? `chunk ${index} fails authentication: the file was altered or truncated` : `chunk ${index} fails authentication: the file was altered`);
  }
  return plain;
}

/** Layout of an encrypted file of `fileSize` bytes: chunk count and plaintext size. */
function geometry(fileSize: number, chunkSize: number, file: string): { chunks: number; plainSize: number; lastLen: number } {
  const body = fileSize - HEADER_BYTES;
  const stride = chunkSize + CHUNK_OVERHEAD;
  if (body < CHUNK_OVERHEAD) throw new EncryptedFileError(file, 'no chunk after the header (truncated file)');
  const chunks = Math.ceil(body / stride);
  const lastLen = body - (chunks - 1) * stride - CHUNK_OVERHEAD;
  if (lastLen < 0) throw new EncryptedFileError(file, `last chunk is cut short (truncated file)`);
  return { chunks, plainSize: (chunks - 1) * chunkSize + lastLen, lastLen };
}

// ---------------------------------------------------------------------------------------------
// Which spool uses which keys. A centre registers its spool root and key ring when it opens
// (jobs/centre.ts); from then on every file written under that root is encrypted, and every file
// read through this module is decrypted if it is encrypted.

/** Registered rings per spool root; the latest registration of a root is the one in force. */
const registered = new Map<string, KeyRing[]>();
const rings = new Map<string, KeyRing>();

/** Encrypts every file written under `root` from now on; returns the undo. */
export function registerSpoolKeys(root: string, ring: KeyRing): () => void {
  const abs = path.resolve(root);
  const stack = registered.get(abs) ?? [];
  stack.push(ring);
  registered.set(abs, stack);
  rings.set(abs, ring);
  setFileAccess(spoolFileAccess);
  let undone = false;
  return () => {
    if (undone) return;
    undone = true;
    stack.splice(stack.lastIndexOf(ring), 1);
    if (stack.length) rings.set(abs, stack[stack.length - 1]!);
    else {
      registered.delete(abs);
      rings.delete(abs);
    }
    if (rings.size === 0) setFileAccess(plainFileAccess);
  };
}

/** The encrypting spool that holds `file`: its root and key ring. */
function spoolOf(file: string): { root: string; ring: KeyRing } | undefined {
  if (rings.size === 0) return undefined;
  let dir = path.resolve(file);
  for (;;) {
    const ring = rings.get(dir);
    if (ring) return { root: dir, ring };
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** The key ring of the spool that holds `file`, if that spool encrypts. */
export function keyRingFor(file: string): KeyRing | undefined {
  return spoolOf(file)?.ring;
}

/** A ring holding `kekIds` (for a file read outside a registered spool, e.g. an operator's copy). */
function ringForRead(file: string, h: Header): KeyRing {
  const own = keyRingFor(file);
  if (own) return own;
  for (const ring of rings.values()) if (h.slots.some((s) => !slotEmpty(s) && ring.get(wrappedKekId(s)))) return ring;
  throw new EncryptedFileError(file, 'is encrypted, and no key-encryption key is loaded in this process (is `encryption:` in the config?)');
}

// ---------------------------------------------------------------------------------------------
// Reading

async function readExactly(fh: FileHandle, buf: Buffer, at: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, at + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/**
 * Random-access plaintext reader of an encrypted file. `read` has FileHandle's shape (position
 * null reads on from the last read), so callers that took a FileHandle take this instead.
 */
export class EncryptedFileReader implements ReadHandle {
  private cacheIndex = -1;
  private cache: Buffer = Buffer.alloc(0);
  readonly isFile = true;
  private position = 0;
  readonly chunks: number;
  readonly size: number;

  private constructor(
    readonly file: string,
    private readonly fh: FileHandle,
    private readonly h: Header,
    private readonly key: Buffer,
    fileSize: number,
    /** A file still being written (a 全銀 partial): no chunk is final yet. */
    private readonly unfinished: boolean,
  ) {
    const g = geometry(fileSize, h.chunkSize, file);
    this.chunks = g.chunks;
    this.size = g.plainSize;
  }

  static async open(file: string, ring?: KeyRing, flags: number = FS.O_RDONLY, opts: { unfinished?: boolean } = {}): Promise<EncryptedFileReader> {
    const fh = await open(file, flags);
    try {
      const head = Buffer.alloc(HEADER_BYTES);
      return await EncryptedFileReader.over(file, fh, head.subarray(0, await readExactly(fh, head, 0)), (await fh.stat()).size, ring, opts);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** A reader over a handle already open, whose first bytes (`head`) were read (openSpoolFile). */
  static over(file: string, fh: FileHandle, head: Buffer, size: number, ring?: KeyRing, opts: { unfinished?: boolean } = {}): EncryptedFileReader {
    const h = parseHeader(head, file);
    const { key } = dataKeyOf(h, ring ?? ringForRead(file, h), file);
    // An unfinished file may end right after its header (nothing checkpointed yet).
    if (opts.unfinished && size < HEADER_BYTES + CHUNK_OVERHEAD) return new EncryptedFileReader(file, fh, h, key, HEADER_BYTES + CHUNK_OVERHEAD, true).emptied();
    return new EncryptedFileReader(file, fh, h, key, size, opts.unfinished === true);
  }

  private emptied(): this {
    (this as { size: number }).size = 0;
    (this as { chunks: number }).chunks = 0;
    return this;
  }

  /**
   * Plaintext bytes at the start of an unfinished file that authenticate, chunk by chunk: what a
   * crash left intact (a torn last write ends it).
   */
  async authenticPrefix(): Promise<number> {
    let bytes = 0;
    for (let i = 0; i < this.chunks; i++) {
      try {
        bytes += (await this.chunk(i)).length;
      } catch (err) {
        if (err instanceof EncryptedFileError) break;
        throw err;
      }
    }
    return bytes;
  }

  private async chunk(index: number): Promise<Buffer> {
    if (index !== this.cacheIndex) await this.load(index, index);
    return this.cache;
  }

  /** Sealed size of chunk `index` on disk. */
  private sealedLength(index: number): number {
    return index === this.chunks - 1 ? this.size - index * this.h.chunkSize + CHUNK_OVERHEAD : this.h.chunkSize + CHUNK_OVERHEAD;
  }

  /** Reused for the sealed bytes of a span of chunks (one read for many chunks); a read that
   * overlaps another (an SFTP client's pipelined READs) takes a buffer of its own. */
  private sealedScratch: Buffer | undefined;
  private scratchBusy = false;

  /**
   * Reads chunks first..last with one read and authenticates each; `each` takes every chunk's
   * plaintext in order. The last one stays cached (the next read usually starts in it).
   */
  private async load(first: number, last: number, each?: (index: number, plain: Buffer) => void): Promise<void> {
    const stride = this.h.chunkSize + CHUNK_OVERHEAD;
    const want = (last - first) * stride + this.sealedLength(last);
    const own = !this.scratchBusy;
    if (own && (!this.sealedScratch || this.sealedScratch.length < want)) this.sealedScratch = Buffer.allocUnsafe(Math.max(want, stride));
    const sealed = own ? this.sealedScratch!.subarray(0, want) : Buffer.allocUnsafe(want);
    let got: number;
    if (own) this.scratchBusy = true;
    try {
      got = await readExactly(this.fh, sealed, HEADER_BYTES + first * stride);
    } catch (err) {
      if (own) this.scratchBusy = false;
      throw err;
    }
    // the scratch stays taken until its chunks are decrypted below (synchronous: no await)
    if (own) this.scratchBusy = false;
    if (got !== want) throw new EncryptedFileError(this.file, `chunk ${first + Math.floor(got / stride)} is cut short (the file changed while read)`);
    for (let index = first; index <= last; index++) {
      const at = (index - first) * stride;
      const final = !this.unfinished && index === this.chunks - 1;
      const plain = openChunk(this.h, this.key, index, sealed.subarray(at, at + this.sealedLength(index)), final, this.file);
      if (index === last) {
        this.cache = plain;
        this.cacheIndex = index;
      }
      each?.(index, plain);
    }
  }

  /** Chunks read ahead in one read, at most (16 MiB of plaintext at the default chunk size). */
  private static readonly MAX_SPAN_CHUNKS = 256;

  async read(buf: Buffer, off = 0, len = buf.length - off, pos: number | null = null): Promise<{ bytesRead: number; buffer: Buffer }> {
    const start = pos ?? this.position;
    const end = Math.min(this.size, start + len);
    const cs = this.h.chunkSize;
    let at = start;
    const take = (index: number, plain: Buffer) => {
      const from = at - index * cs;
      const n = Math.min(plain.length - from, end - at);
      plain.copy(buf, off + at - start, from, from + n);
      at += n;
    };
    while (at < end) {
      const index = Math.floor(at / cs);
      if (index === this.cacheIndex) {
        take(index, this.cache);
        continue;
      }
      // The chunks that hold the rest of the range, read and authenticated together.
      const last = Math.min(Math.floor((end - 1) / cs), index + EncryptedFileReader.MAX_SPAN_CHUNKS - 1);
      await this.load(index, last, take);
    }
    // A read that reaches the end also authenticates the last chunk: a file cut at a chunk
    // boundary would otherwise read as a shorter, valid file.
    if (len > 0 && at >= this.size && this.chunks > 0 && !this.unfinished) await this.chunk(this.chunks - 1);
    if (pos === null) this.position = at;
    return { bytesRead: at - start, buffer: buf };
  }

  async stat(): Promise<{ size: number; isFile(): boolean }> {
    return { size: this.size, isFile: () => true };
  }

  /** Plaintext bytes from `start` to `end` inclusive (fs.createReadStream's convention). */
  createReadStream(opts: { start?: number; end?: number; highWaterMark?: number } = {}): Readable {
    const end = Math.min(this.size, opts.end === undefined ? this.size : opts.end + 1);
    const step = opts.highWaterMark ?? 1 << 20;
    let at = opts.start ?? 0;
    const reader = this;
    return new Readable({
      highWaterMark: step,
      async read() {
        try {
          if (at >= end) {
            if (end === reader.size && reader.chunks > 0) await reader.chunk(reader.chunks - 1);
            this.push(null);
            return;
          }
          const buf = Buffer.allocUnsafe(Math.min(step, end - at));
          const { bytesRead } = await reader.read(buf, 0, buf.length, at);
          at += bytesRead;
          this.push(buf.subarray(0, bytesRead));
        } catch (err) {
          this.destroy(err as Error);
        }
      },
      destroy(err, cb) {
        reader.close().then(() => cb(err), () => cb(err));
      },
    });
  }

  private closed = false;
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }
}

/** Whether the first bytes of `file` are an encrypted spool file's header. */
export async function isEncryptedFile(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(MAGIC.length);
    return (await readExactly(fh, b, 0)) === MAGIC.length && b.equals(MAGIC);
  } finally {
    await fh.close();
  }
}

/** A plain file with the same reader shape (files written before encryption was configured). */
class PlainReader implements ReadHandle {
  constructor(
    readonly file: string,
    private readonly fh: FileHandle,
    readonly size: number,
    readonly isFile: boolean,
  ) {}
  read(buf: Buffer, off = 0, len = buf.length - off, pos: number | null = null) {
    return this.fh.read(buf, off, len, pos);
  }
  async stat() {
    return { size: this.size, isFile: () => true };
  }
  createReadStream(opts: { start?: number; end?: number; highWaterMark?: number } = {}): Readable {
    return this.fh.createReadStream({ ...opts, autoClose: true });
  }
  close() {
    return this.fh.close().catch(() => undefined);
  }
}

export type SpoolReader = EncryptedFileReader | PlainReader;

/**
 * Opens a spool file for its plaintext: decrypted if it is encrypted, as is if not. `flags` lets
 * a listener keep O_NOFOLLOW. This is how bytes leave to a partner or to an operator command.
 */
export async function openSpoolFile(file: string, flags: number = FS.O_RDONLY): Promise<SpoolReader> {
  const fh = await open(file, flags);
  try {
    const s = await fh.stat();
    const head = Buffer.alloc(HEADER_BYTES);
    const got = s.isFile() ? await readExactly(fh, head, 0) : 0;
    if (got >= MAGIC.length && head.subarray(0, MAGIC.length).equals(MAGIC)) return EncryptedFileReader.over(file, fh, head.subarray(0, got), s.size);
    return new PlainReader(file, fh, s.size, s.isFile());
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** A plaintext stream of a spool file (whole, or bytes start..end inclusive). */
export async function createSpoolReadStream(file: string, opts: { start?: number; end?: number; highWaterMark?: number } = {}): Promise<Readable> {
  const r = await openSpoolFile(file);
  return r.createReadStream(opts);
}

/** The plaintext size of a spool file, from its size on disk (no decryption). */
export async function spoolFileSize(file: string, st?: Stats): Promise<number> {
  const s = st ?? (await stat(file));
  if (!s.isFile() || s.size < HEADER_BYTES) return s.size;
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(10);
    await readExactly(fh, head, 0);
    if (!head.subarray(0, 8).equals(MAGIC)) return s.size;
    return geometry(s.size, 1 << head[9]!, file).plainSize;
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

interface SealedChunk {
  at: number;
  data: Buffer[];
}

/** Accumulates plaintext and cuts it into sealed chunks; the writers below put them on disk. */
class ChunkSealer {
  private buf: Buffer;
  private used = 0;
  index = 0;
  plainBytes = 0;

  constructor(
    readonly h: Header,
    private readonly key: Buffer,
  ) {
    this.buf = Buffer.allocUnsafe(h.chunkSize);
  }

  get stride(): number {
    return this.h.chunkSize + CHUNK_OVERHEAD;
  }

  /** File offset of the chunk being filled. */
  get tailOffset(): number {
    return HEADER_BYTES + this.index * this.stride;
  }

  /** Takes plaintext; adds the whole chunks it completed, sealed (not final), to `out`. */
  take(src: Buffer, out: SealedChunk[]): SealedChunk[] {
    let off = 0;
    this.plainBytes += src.length;
    // Whole chunks straight from the caller's buffer (no copy), while more bytes follow them.
    while (this.used === 0 && src.length - off > this.buf.length) {
      out.push({ at: this.tailOffset, data: sealChunk(this.h, this.key, this.index, src.subarray(off, off + this.buf.length), false) });
      this.index++;
      off += this.buf.length;
    }
    while (off < src.length) {
      const n = Math.min(this.buf.length - this.used, src.length - off);
      src.copy(this.buf, this.used, off, off + n);
      this.used += n;
      off += n;
      // A full chunk is sealed only when more bytes follow: the last chunk, full or not, is final.
      if (this.used === this.buf.length && off < src.length) this.sealFull(out);
    }
    return out;
  }

  /** Seals the pending full chunk, if the buffer is full (called before taking more bytes). */
  sealFull(out: SealedChunk[]): void {
    if (this.used < this.buf.length) return;
    out.push({ at: this.tailOffset, data: sealChunk(this.h, this.key, this.index, this.buf, false) });
    this.index++;
    this.used = 0;
  }

  /** The unfinished chunk sealed as not final (a checkpoint; it is rewritten when it grows). */
  sealTail(): Buffer[] {
    return sealChunk(this.h, this.key, this.index, this.buf.subarray(0, this.used), false);
  }

  /** The last chunk, final. */
  sealFinal(): Buffer[] {
    return sealChunk(this.h, this.key, this.index, this.buf.subarray(0, this.used), true);
  }

  /** Resumes with `plain` as the start of the unfinished chunk. */
  preload(plain: Buffer, index: number, plainBytes: number): void {
    plain.copy(this.buf, 0);
    this.used = plain.length;
    this.index = index;
    this.plainBytes = plainBytes;
  }
}

/** Synchronous encrypted writer (formats' record writers write from synchronous loops). */
export class EncryptedSyncWriter implements SyncSink {
  readonly fd: number;
  private readonly sealer: ChunkSealer;
  private readonly pending: SealedChunk[] = [];

  constructor(
    readonly file: string,
    ring: KeyRing,
    chunkLog2 = DEFAULT_CHUNK_LOG2,
  ) {
    const { header, dataKey, parsed } = newHeader(ring, chunkLog2);
    this.fd = openSync(file, 'w', 0o600);
    this.sealer = new ChunkSealer(parsed, dataKey);
    this.writeOut([header]);
  }

  /** One system call for many parts (a record writer hands over 256 KiB at once: 4 chunks, 12 parts). */
  private writeOut(parts: Buffer[]): void {
    const total = parts.reduce((n, b) => n + b.length, 0);
    const done = writevSync(this.fd, parts);
    if (done < total) {
      const rest = Buffer.concat(parts).subarray(done);
      let off = 0;
      while (off < rest.length) off += writeSync(this.fd, rest, off, rest.length - off);
    }
  }

  write(src: Buffer): void {
    this.sealer.sealFull(this.pending);
    this.sealer.take(src, this.pending);
    if (this.pending.length) this.writeOut(this.pending.flatMap((c) => c.data));
    this.pending.length = 0;
  }

  /** Writes the final chunk and (when `durable`) syncs; the descriptor stays open for the caller to close. */
  finish(durable = true): void {
    this.writeOut(this.sealer.sealFinal());
    if (durable) fsyncSync(this.fd);
  }

  close(): void {
    this.finish();
    closeSync(this.fd);
  }
}

/**
 * Asynchronous encrypted writer for listeners and the 全銀 partial store. Writes must come in
 * order; `write(buf, position)` accepts writes that arrive ahead of their turn (an SFTP client's
 * pipelined WRITEs finish in any order) and holds them, up to `maxAheadBytes`, until the gap fills.
 */
export class EncryptedFileWriter {
  private chain: Promise<unknown> = Promise.resolve();
  private failed: Error | undefined;
  private ahead = new Map<number, Buffer>();
  private aheadBytes = 0;
  private finished = false;

  private constructor(
    readonly file: string,
    private readonly fh: FileHandle,
    private readonly sealer: ChunkSealer,
    private readonly maxAheadBytes: number,
  ) {}

  static async create(file: string, ring: KeyRing, opts: { flag?: string; chunkLog2?: number; maxAheadBytes?: number } = {}): Promise<EncryptedFileWriter> {
    const { header, dataKey, parsed } = newHeader(ring, opts.chunkLog2 ?? DEFAULT_CHUNK_LOG2);
    const fh = await open(file, opts.flag ?? 'wx', 0o600);
    const w = new EncryptedFileWriter(file, fh, new ChunkSealer(parsed, dataKey), opts.maxAheadBytes ?? 64 << 20);
    w.queue([header], 0);
    return w;
  }

  /**
   * Reopens an unfinished file (written up to a checkpoint) to append after its first
   * `plainBytes` bytes; anything after them is dropped. Returns the writer and those bytes' reader
   * result so the caller can re-hash them.
   */
  static async resume(file: string, ring: KeyRing, plainBytes: number, maxAheadBytes = 64 << 20): Promise<EncryptedFileWriter> {
    const fh = await open(file, 'r+');
    try {
      const head = Buffer.alloc(HEADER_BYTES);
      const h = parseHeader(head.subarray(0, await readExactly(fh, head, 0)), file);
      const { key } = dataKeyOf(h, ring, file);
      const stride = h.chunkSize + CHUNK_OVERHEAD;
      const index = Math.floor(plainBytes / h.chunkSize);
      const tail = plainBytes - index * h.chunkSize;
      const sealer = new ChunkSealer(h, key);
      let tailPlain: Buffer = Buffer.alloc(0);
      if (tail > 0) {
        // The chunk holding the cut: read it whole as far as it goes (not final: unfinished file).
        const sealed = Buffer.allocUnsafe(stride);
        const got = await readExactly(fh, sealed, HEADER_BYTES + index * stride);
        tailPlain = openChunk(h, key, index, sealed.subarray(0, got), false, file).subarray(0, tail);
        if (tailPlain.length < tail) throw new EncryptedFileError(file, `holds fewer than ${plainBytes} bytes`);
      }
      await fh.truncate(HEADER_BYTES + index * stride);
      sealer.preload(tailPlain, index, plainBytes);
      return new EncryptedFileWriter(file, fh, sealer, maxAheadBytes);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  get plainBytes(): number {
    return this.sealer.plainBytes;
  }

  private queue(parts: Buffer[], at: number): void {
    const p = this.chain.then(async () => {
      if (this.failed) return;
      const total = parts.reduce((n, b) => n + b.length, 0);
      const { bytesWritten } = await this.fh.writev(parts, at);
      if (bytesWritten < total) {
        const rest = Buffer.concat(parts).subarray(bytesWritten);
        let done = 0;
        while (done < rest.length) done += (await this.fh.write(rest, done, rest.length - done, at + bytesWritten + done)).bytesWritten;
      }
    });
    p.catch((err: Error) => (this.failed ??= err));
    this.chain = p.catch(() => undefined);
  }

  private append(src: Buffer): void {
    const sealed: SealedChunk[] = [];
    this.sealer.sealFull(sealed);
    this.sealer.take(src, sealed);
    // the chunks sealed from one write follow each other on disk: one writev for all of them
    if (sealed.length) this.queue(sealed.flatMap((c) => c.data), sealed[0]!.at);
  }

  /**
   * Takes bytes at plaintext `position` (default: at the end). Resolves once they are queued in
   * order (not yet on disk: `sync()` or `finish()` waits for that).
   */
  async write(src: Buffer, off = 0, len = src.length - off, position: number | null = null): Promise<{ bytesWritten: number }> {
    if (this.failed) throw this.failed;
    if (this.finished) throw new EncryptedFileError(this.file, 'write after finish');
    const data = off === 0 && len === src.length ? src : src.subarray(off, off + len);
    const at = position ?? this.sealer.plainBytes;
    if (at < this.sealer.plainBytes) throw new EncryptedFileError(this.file, `write at ${at} goes back before ${this.sealer.plainBytes}: an encrypted spool file is written in order`);
    if (at > this.sealer.plainBytes) {
      if (this.aheadBytes + data.length > this.maxAheadBytes) throw new EncryptedFileError(this.file, `writes ahead of offset ${this.sealer.plainBytes} exceed ${this.maxAheadBytes} bytes`);
      this.ahead.set(at, Buffer.from(data));
      this.aheadBytes += data.length;
      return { bytesWritten: data.length };
    }
    this.append(data);
    for (let next = this.ahead.get(this.sealer.plainBytes); next; next = this.ahead.get(this.sealer.plainBytes)) {
      this.ahead.delete(this.sealer.plainBytes);
      this.aheadBytes -= next.length;
      this.append(next);
    }
    return { bytesWritten: data.length };
  }

  private async drain(): Promise<void> {
    await this.chain;
    if (this.failed) throw this.failed;
  }

  /** Puts what was written so far on disk (the unfinished chunk as not final) and fsyncs. */
  async checkpoint(): Promise<void> {
    this.queue(this.sealer.sealTail(), this.sealer.tailOffset);
    await this.drain();
    await this.fh.sync();
  }

  /** Waits for queued writes and fsyncs (what FileHandle.sync() promised the callers). */
  async sync(): Promise<void> {
    await this.drain();
    await this.fh.sync();
  }

  /** Writes the final chunk, fsyncs and closes; returns the plaintext size. */
  async finish(): Promise<number> {
    if (this.finished) return this.sealer.plainBytes;
    if (this.ahead.size > 0) throw new EncryptedFileError(this.file, `upload has a gap at offset ${this.sealer.plainBytes}`);
    this.finished = true;
    this.queue(this.sealer.sealFinal(), this.sealer.tailOffset);
    try {
      await this.drain();
      await this.fh.sync();
    } finally {
      await this.fh.close().catch(() => undefined);
    }
    return this.sealer.plainBytes;
  }

  /** Closes without finishing (the caller removes the file, or resumes it later). */
  async close(): Promise<void> {
    this.finished = true;
    await this.chain;
    await this.fh.close().catch(() => undefined);
  }
}

/**
 * Encrypts a plain file that a protocol client wrote itself (SFTP fastGet, FTP download, a HULFT
 * hand-over, a partner's own drop) in place: encrypted copy beside it (synced), then renamed over
 * it. False when the file is encrypted already (nothing done).
 */
export async function encryptInPlace(file: string, ring: KeyRing): Promise<boolean> {
  const fh = await open(file, 'r');
  let w: EncryptedFileWriter | undefined;
  const temp = temporaryPathFor(file);
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let got = await readExactly(fh, buf.subarray(0, MAGIC.length), 0);
    if (got === MAGIC.length && buf.subarray(0, MAGIC.length).equals(MAGIC)) return false;
    w = await EncryptedFileWriter.create(temp, ring);
    let at = 0;
    // the writer seals each read at once (ciphertext in buffers of its own): `buf` is free again
    for (got = (await fh.read(buf, 0, buf.length, at)).bytesRead; got > 0; got = (await fh.read(buf, 0, buf.length, at)).bytesRead) {
      await w.write(buf.subarray(0, got));
      at += got;
    }
    await w.finish();
    await rename(temp, file);
    await fsyncDir(path.dirname(file));
    return true;
  } catch (err) {
    await w?.close();
    if (w) await rm(temp, { force: true });
    throw err;
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * Runs `fn` with a plaintext path of `file`, for a protocol library that reads a path itself
 * (ssh2-sftp-client's fastPut, basic-ftp, a HULFT hand-over): a plain file is passed as is; an
 * encrypted one is decrypted into a 0600 temporary in the spool's work folder (0700), removed
 * when `fn` ends. A temporary left by a crash is removed by recovery like any other in work/.
 */
export async function withPlaintext<T>(file: string, fn: (plainPath: string) => Promise<T>): Promise<T> {
  if (!(await isEncryptedFile(file))) return fn(file);
  const owner = spoolOf(file);
  const dir = owner ? path.join(owner.root, 'work') : path.dirname(file);
  const temp = path.join(dir, `.plain-${randomBytes(6).toString('hex')}.part`);
  try {
    const out = await open(temp, 'wx', 0o600);
    try {
      for await (const chunk of await createSpoolReadStream(file)) await out.write(chunk as Buffer);
    } finally {
      await out.close();
    }
    return await fn(temp);
  } finally {
    await rm(temp, { force: true });
  }
}

/**
 * Writes the plaintext of `file` to `target` (mode 0600, refused if it exists): the operator's
 * export. The caller audits it before calling.
 */
export async function exportPlaintext(file: string, target: string): Promise<number> {
  const out = await open(target, 'wx', 0o600);
  let bytes = 0;
  try {
    for await (const chunk of await createSpoolReadStream(file)) {
      await out.write(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    await out.sync();
  } finally {
    await out.close();
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Key rotation: a new wrap of the data key, written into the header's free slot, without
// touching the data.

export type RewrapOutcome = 'rewrapped' | 'current' | 'plain';

/**
 * Re-wraps the data key of `file` under the ring's current KEK. Crash-safe: the new wrap goes
 * into the free (or the older) slot and is synced before the other slot is cleared, so at every
 * moment one slot unwraps with a loaded key. Only the 138 bytes of the two slots are written.
 */
export async function rewrapFile(file: string, ring: KeyRing): Promise<RewrapOutcome> {
  const fh = await open(file, 'r+');
  try {
    const head = Buffer.alloc(HEADER_BYTES);
    const got = await readExactly(fh, head, 0);
    if (got < MAGIC.length || !head.subarray(0, 8).equals(MAGIC)) return 'plain';
    const h = parseHeader(head.subarray(0, got), file);
    const { key, slot } = dataKeyOf(h, ring, file);
    const other = 1 - slot;
    const usedId = wrappedKekId(h.slots[slot]!);
    if (usedId === ring.current.id && slotEmpty(h.slots[other]!)) return 'current';
    const offsetOf = (i: number) => (i === 0 ? SLOT_A : SLOT_B);
    if (usedId !== ring.current.id) {
      await fh.write(wrapDataKey(ring.current, key, wrapContext(h.salt)), 0, WRAPPED_KEY_BYTES, offsetOf(other));
      await fh.sync();
      await fh.write(Buffer.alloc(WRAPPED_KEY_BYTES), 0, WRAPPED_KEY_BYTES, offsetOf(slot));
    } else {
      // A rotation interrupted after its new wrap: clear the old one.
      await fh.write(Buffer.alloc(WRAPPED_KEY_BYTES), 0, WRAPPED_KEY_BYTES, offsetOf(other));
    }
    await fh.sync();
    return 'rewrapped';
  } finally {
    await fh.close();
  }
}

/** The KEK ids a file's header names (for `tsunagi keys status`); [] for a plain file. */
export async function kekIdsOf(file: string): Promise<string[]> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(HEADER_BYTES);
    const got = await readExactly(fh, head, 0);
    if (got < HEADER_BYTES || !head.subarray(0, 8).equals(MAGIC)) return [];
    return parseHeader(head, file).slots.filter((s) => !slotEmpty(s)).map((s) => wrappedKekId(s));
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The formats engine's file access (formats/file-access.ts): it cannot import spool, so spool
// plugs this in when a centre registers its keys.

const spoolFileAccess = {
  async openRead(file: string): Promise<ReadHandle> {
    return openSpoolFile(file);
  },
  openWriteSync(file: string): SyncSink {
    const ring = keyRingFor(file);
    return ring ? new EncryptedSyncWriter(file, ring) : plainFileAccess.openWriteSync(file);
  },
  async plainSize(file: string): Promise<number> {
    return spoolFileSize(file);
  },
};

export { KeyError };

/** The whole plaintext of a spool file in memory (AS2 builds its message from one buffer). */
export async function readSpoolFile(file: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of await createSpoolReadStream(file, { highWaterMark: 1 << 20 })) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** A new spool file written in order: encrypted when its spool encrypts, else plain (0600). */
export interface SpoolFileWriter {
  write(data: Buffer): Promise<unknown>;
  /** Everything on disk, closed; the content's size. */
  finish(): Promise<number>;
  /** Closed without finishing (the caller removes the file). */
  close(): Promise<void>;
}

export async function createSpoolFile(file: string): Promise<SpoolFileWriter> {
  const ring = keyRingFor(file);
  if (ring) return EncryptedFileWriter.create(file, ring);
  const fh = await open(file, 'wx', 0o600);
  let bytes = 0;
  return {
    write: async (data) => {
      await fh.write(data);
      bytes += data.length;
    },
    finish: async () => {
      await fh.sync();
      await fh.close();
      return bytes;
    },
    close: () => fh.close().catch(() => undefined),
  };
}

/**
 * Copies a spool file's plaintext to `target` outside the spool (a partner's own folder on a
 * shared disk): the bytes leave to the partner here. The copy gets the usual 0644 (less the
 * umask), as before encryption: the partner's folder and its user are the partner's.
 */
export async function copyOutOfSpool(file: string, target: string): Promise<void> {
  const out = await open(target, 'w', 0o644);
  try {
    for await (const chunk of await createSpoolReadStream(file, { highWaterMark: 1 << 20 })) await out.write(chunk as Buffer);
    await out.sync();
  } finally {
    await out.close();
  }
}

/** For commands that take a file by path without keys (validate, convert): the refusal to give. */
export async function encryptedFileHint(file: string): Promise<string | undefined> {
  if (!(await isEncryptedFile(file).catch(() => false))) return undefined;
  return `${file} is a spool file encrypted at rest: take its plaintext with \`tsunagi export FILE_ID --out PATH --reason TEXT\` (audited), then give that copy`;
}
