// Nothing is deleted before it is archived; the archive is purged after the retention period.
import { mkdir, readdir, rename, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir } from './atomic.ts';
import { PRIVATE_DIR, type SpoolTree } from './tree.ts';

/** Moves a file into today's archive folder; returns the archive path. */
export async function archiveFile(tree: SpoolTree, currentPath: string, archiveName: string, at = new Date()): Promise<string> {
  const dir = tree.archiveDir(at);
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR });
  const target = path.join(dir, archiveName);
  await rename(currentPath, target);
  await fsyncDir(dir);
  return target;
}

/** Removes an archived file; tolerates one already gone (a purge that crashed half-way). */
export async function removeArchived(archivedPath: string): Promise<void> {
  await rm(archivedPath, { force: true });
}

/** Removes empty day/month/year folders left behind in the archive. */
export async function pruneEmptyArchiveDirs(tree: SpoolTree): Promise<void> {
  const walk = async (dir: string, depth: number): Promise<boolean> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return false;
    }
    let empty = true;
    for (const e of entries) {
      if (e.isDirectory() && depth < 3) {
        if (!(await walk(path.join(dir, e.name), depth + 1))) empty = false;
      } else empty = false;
    }
    if (empty && depth > 0) await rmdir(dir).catch(() => undefined);
    return empty;
  };
  await walk(tree.archiveRoot, 0);
}
