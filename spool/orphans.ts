// Temporaries nobody will finish: our own landing and publish temporaries left by a crash, a
// client's own .part/.tmp uploads it never renamed, and claim notes without their file. Removed
// once older than a grace period (an upload in progress keeps touching its file).
import { lstat, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { isTemporaryName, type SpoolTree } from './tree.ts';

async function oldTemporaries(dir: string, cutoff: number, keep: (name: string) => boolean = () => false): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const name of names) {
    if (!isTemporaryName(name) || keep(name)) continue;
    const p = path.join(dir, name);
    const s = await lstat(p).catch(() => undefined);
    if (s && !s.isDirectory() && s.mtimeMs < cutoff) out.push(p);
  }
  return out;
}

/** Removes orphaned temporaries older than `graceMs` from inbound, outbound and work; returns their paths. */
export async function purgeOrphans(tree: SpoolTree, partnerIds: string[], graceMs: number, now = Date.now()): Promise<string[]> {
  const cutoff = now - graceMs;
  const found: string[] = [];
  for (const id of partnerIds) {
    found.push(...(await oldTemporaries(tree.inbound(id), cutoff)));
    found.push(...(await oldTemporaries(tree.outbound(id), cutoff)));
  }
  // In work/, only claim notes whose file is gone (the file's row then exists, or it never will).
  const work = await readdir(tree.work).catch(() => [] as string[]);
  const present = new Set(work);
  found.push(...(await oldTemporaries(tree.work, cutoff, (name) => !name.endsWith('.name') || present.has(name.slice(1, -'.name'.length)))));
  for (const p of found) await rm(p, { force: true });
  return found;
}
