// How a protocol listener lands a file in a partner's inbound folder: it writes under a temporary
// name (which the ingest scan ignores) and commits with a rename only when the transfer succeeded.
// A dropped connection aborts, and nothing appears in inbound.
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { publishFile, temporaryPathFor } from './atomic.ts';
import { displayName, fileNameProblem } from './names.ts';

export class UnsafeNameError extends Error {}

/** A plain file name (see names.ts): no folders, no dot files, no controls, at most 200 bytes. */
export function assertSafeFileName(name: string): void {
  const problem = fileNameProblem(name);
  if (problem) throw new UnsafeNameError(`unsafe file name "${displayName(name, 80)}": ${problem}`);
}

export interface Landing {
  readonly tempPath: string;
  readonly finalPath: string;
  readonly handle: FileHandle;
  /** Closes our handle so that another writer (a protocol client) can fill `tempPath` itself. */
  release(): Promise<void>;
  /** fsync, rename to the final name; returns the final path and size. */
  commit(): Promise<{ path: string; size: number }>;
  /** Throws away what was written. Safe to call twice or after commit fails. */
  abort(): Promise<void>;
}

export async function beginLanding(dir: string, name: string): Promise<Landing> {
  assertSafeFileName(name);
  const finalPath = path.join(dir, name);
  const tempPath = temporaryPathFor(finalPath);
  const handle = await open(tempPath, 'wx');
  let closed = false;
  const close = async () => {
    if (!closed) {
      closed = true;
      await handle.close();
    }
  };
  return {
    tempPath,
    finalPath,
    handle,
    release: close,
    async commit() {
      await close();
      const { size } = await stat(tempPath);
      await publishFile(tempPath, finalPath);
      return { path: finalPath, size };
    },
    async abort() {
      await close().catch(() => undefined);
      await rm(tempPath, { force: true });
    },
  };
}

/** Lands a whole buffer or stream in one go. */
export async function landFile(dir: string, name: string, data: Buffer | AsyncIterable<Buffer>): Promise<{ path: string; size: number }> {
  const landing = await beginLanding(dir, name);
  try {
    if (Buffer.isBuffer(data)) await landing.handle.write(data);
    else for await (const chunk of data) await landing.handle.write(chunk);
    return await landing.commit();
  } catch (err) {
    await landing.abort();
    throw err;
  }
}
