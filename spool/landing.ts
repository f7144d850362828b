// How a protocol listener lands a file in a partner's inbound folder: it writes under a temporary
// name (which the ingest scan ignores) and commits with a rename only when the transfer succeeded.
// A dropped connection aborts, and nothing appears in inbound.
import { open, rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import { publishFile, temporaryPathFor } from './atomic.ts';
import { EncryptedFileWriter, encryptInPlace, keyRingFor, spoolFileSize } from './encrypted-file.ts';
import { displayName, fileNameProblem } from './names.ts';

export class UnsafeNameError extends Error {}

/** What one upload may take: a size limit per partner, and free space the disk must keep. */
export interface LandingLimits {
  maxBytes?: number;
  reserveBytes?: number;
}

/** An upload refused for its size or for the disk's free space; the message is for the partner. */
export class LandingRefused extends Error {
  constructor(
    readonly reason: 'too-large' | 'disk-full',
    message: string,
  ) {
    super(message);
  }
}

/**
 * The upload's audit row could not be committed: the file is not committed either, and the
 * partner gets a protocol error instead of a success (an acknowledged upload always has its
 * durable audit row, PCI DSS 10.5). The message is for the partner.
 */
export class AuditWriteFailed extends Error {
  constructor(readonly cause: unknown) {
    super('upload refused: the centre could not record it, send it again later');
  }
}

/** Runs the upload's audit write; a failure of it becomes AuditWriteFailed. */
export async function recordBeforeAck(record: () => Promise<unknown>): Promise<void> {
  try {
    await record();
  } catch (err) {
    throw err instanceof AuditWriteFailed ? err : new AuditWriteFailed(err);
  }
}

/** Free space check again after this many more bytes of one upload. */
const SPACE_CHECK_BYTES = 16 << 20;

export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/** Refuses when the disk holding `dir` has less than `reserveBytes` free. */
export async function assertFreeSpace(dir: string, reserveBytes: number | undefined): Promise<void> {
  if (!reserveBytes) return;
  const free = await freeBytes(dir);
  if (free < reserveBytes) {
    throw new LandingRefused('disk-full', `insufficient storage: upload refused (${Math.floor(free / 2 ** 20)} MiB free, the centre keeps ${Math.ceil(reserveBytes / 2 ** 20)} MiB)`);
  }
}

/** Refuses a size over the limit. */
export function sizeRefusal(bytes: number, maxBytes: number | undefined): LandingRefused | undefined {
  if (maxBytes === undefined || bytes <= maxBytes) return undefined;
  return new LandingRefused('too-large', `file too large: at most ${maxBytes} bytes`);
}

/** A plain file name (see names.ts): no folders, no dot files, no controls, at most 200 bytes. */
export function assertSafeFileName(name: string): void {
  const problem = fileNameProblem(name);
  if (problem) throw new UnsafeNameError(`unsafe file name "${displayName(name, 80)}": ${problem}`);
}

/**
 * Where a listener writes the upload's bytes: plaintext in, and on disk encrypted when the spool
 * encrypts (spool/encrypted-file.ts). Writes must come in order of position, or ahead of it
 * (held until the gap fills); a write that goes back is refused.
 */
export interface LandingHandle {
  write(data: Buffer, off?: number, len?: number, position?: number | null): Promise<{ bytesWritten: number }>;
  /** What was written is on disk. */
  sync(): Promise<void>;
}

export interface Landing {
  readonly tempPath: string;
  readonly finalPath: string;
  readonly handle: LandingHandle;
  /**
   * Closes our handle (finishing what was written through it), so that another writer (a
   * protocol client) can fill `tempPath` itself; commit then encrypts what that writer left.
   */
  release(): Promise<void>;
  /**
   * fsync, rename to the final name; returns the final path and size. `record` (the upload's
   * audit row, given the size) runs first: when it fails, nothing is renamed and commit throws
   * AuditWriteFailed (the caller aborts the landing and answers with a protocol error).
   */
  commit(record?: (size: number) => Promise<unknown>): Promise<{ path: string; size: number }>;
  /** Throws away what was written. Safe to call twice or after commit fails. */
  abort(): Promise<void>;
  /**
   * Before writing up to byte `end`: the refusal if the file would pass its size limit or the
   * disk fell below its reserve (checked in the background every 16 MiB), else undefined.
   */
  admit(end: number): LandingRefused | undefined;
}

export async function beginLanding(dir: string, name: string, limits: LandingLimits = {}): Promise<Landing> {
  assertSafeFileName(name);
  await assertFreeSpace(dir, limits.reserveBytes);
  const finalPath = path.join(dir, name);
  const tempPath = temporaryPathFor(finalPath);
  const ring = keyRingFor(dir);
  const encrypted = ring ? await EncryptedFileWriter.create(tempPath, ring) : undefined;
  const plain = encrypted ? undefined : await open(tempPath, 'wx', 0o600);
  const handle: LandingHandle = encrypted ?? plain!;
  let closed = false;
  let refusal: LandingRefused | undefined;
  let nextSpaceCheck = SPACE_CHECK_BYTES;
  const close = async () => {
    if (!closed) {
      closed = true;
      if (encrypted) await encrypted.finish();
      else await plain!.close();
    }
  };
  return {
    tempPath,
    finalPath,
    handle,
    release: close,
    admit(end) {
      refusal ??= sizeRefusal(end, limits.maxBytes);
      if (!refusal && limits.reserveBytes && end >= nextSpaceCheck) {
        nextSpaceCheck = end + SPACE_CHECK_BYTES;
        assertFreeSpace(dir, limits.reserveBytes).catch((err: unknown) => {
          if (err instanceof LandingRefused) refusal ??= err;
        });
      }
      return refusal;
    },
    async commit(record) {
      await close();
      if (refusal) throw refusal;
      if (ring) await encryptInPlace(tempPath, ring);
      const size = await spoolFileSize(tempPath);
      const tooLarge = sizeRefusal(size, limits.maxBytes);
      if (tooLarge) throw tooLarge;
      if (record) await recordBeforeAck(() => record(size));
      await publishFile(tempPath, finalPath);
      return { path: finalPath, size };
    },
    async abort() {
      if (encrypted && !closed) {
        closed = true;
        await encrypted.close();
      }
      await close().catch(() => undefined);
      await rm(tempPath, { force: true });
    },
  };
}

/** Lands a whole buffer or stream in one go. */
export async function landFile(
  dir: string,
  name: string,
  data: Buffer | AsyncIterable<Buffer>,
  limits: LandingLimits = {},
  record?: (size: number) => Promise<unknown>,
): Promise<{ path: string; size: number }> {
  const landing = await beginLanding(dir, name, limits);
  try {
    if (Buffer.isBuffer(data)) await landing.handle.write(data);
    else for await (const chunk of data) await landing.handle.write(chunk);
    return await landing.commit(record);
  } catch (err) {
    await landing.abort();
    throw err;
  }
}

/**
 * Commits a file its receiver already wrote and checked elsewhere on the same file system (the
 * HULFT post-receive job): fsync, rename to `dir/name`, fsync the folder. Returns the final path.
 * Renaming the same bytes onto the same name again is harmless, so a re-run can repeat it.
 */
export async function landPreparedFile(tempPath: string, dir: string, name: string): Promise<string> {
  assertSafeFileName(name);
  const finalPath = path.join(dir, name);
  const ring = keyRingFor(dir);
  if (ring) await encryptInPlace(tempPath, ring);
  await publishFile(tempPath, finalPath);
  return finalPath;
}
