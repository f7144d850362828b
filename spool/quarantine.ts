// error/: files that could not go through, kept for an operator under our own name.
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir } from './atomic.ts';
import { PRIVATE_DIR } from './tree.ts';

/** Moves a file into the error folder as `name`; returns its new path. */
export async function quarantineFile(errorDir: string, currentPath: string, name: string): Promise<string> {
  await mkdir(errorDir, { recursive: true, mode: PRIVATE_DIR });
  const target = path.join(errorDir, name);
  await rename(currentPath, target);
  await fsyncDir(errorDir);
  return target;
}
