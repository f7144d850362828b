// Durable, atomic file publication: write under a temporary name, fsync, rename, fsync the folder.
// A reader of the folder sees the whole file or nothing.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { access, open, rename, rm, link, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';

export async function pathExists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

export function temporaryPathFor(finalPath: string): string {
  return path.join(path.dirname(finalPath), `.${path.basename(finalPath)}.${randomBytes(4).toString('hex')}.part`);
}

export async function fsyncPath(p: string): Promise<void> {
  const fh = await open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  await fsyncPath(dir);
}

/** Makes a finished temporary file visible under its final name, durably. */
export async function publishFile(tempPath: string, finalPath: string): Promise<void> {
  await fsyncPath(tempPath);
  await rename(tempPath, finalPath);
  await fsyncDir(path.dirname(finalPath));
}

/**
 * Like publishFile, but refuses to replace an existing file (link(2) fails with EEXIST),
 * so two publishers of the same name cannot overwrite each other.
 */
export async function publishFileExclusive(tempPath: string, finalPath: string): Promise<void> {
  await fsyncPath(tempPath);
  await link(tempPath, finalPath);
  await unlink(tempPath);
  await fsyncDir(path.dirname(finalPath));
}

export async function writeFileAtomic(finalPath: string, data: Buffer | string | Readable): Promise<void> {
  const temp = temporaryPathFor(finalPath);
  try {
    if (typeof data === 'string' || Buffer.isBuffer(data)) {
      const fh = await open(temp, 'w');
      try {
        await fh.writeFile(data);
      } finally {
        await fh.close();
      }
    } else {
      await pipeline(data, createWriteStream(temp));
    }
    await publishFile(temp, finalPath);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
