// Picking up inbound files: only complete ones, and each by exactly one worker.
import { randomBytes } from 'node:crypto';
import { readdir, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir } from './atomic.ts';
import { isTemporaryName } from './tree.ts';

export interface InboundCandidate {
  name: string;
  path: string;
  size: number;
  mtimeMs: number;
}

/**
 * Files in an inbound folder that are complete: not under a temporary name, and unchanged for
 * `quietMs` (for senders that cannot rename). Oldest first.
 */
export async function listCompleteInbound(dir: string, quietMs: number, now = Date.now()): Promise<InboundCandidate[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: InboundCandidate[] = [];
  for (const e of entries) {
    if (!e.isFile() || isTemporaryName(e.name)) continue;
    const p = path.join(dir, e.name);
    try {
      const s = await stat(p);
      if (now - s.mtimeMs >= quietMs) out.push({ name: e.name, path: p, size: s.size, mtimeMs: s.mtimeMs });
    } catch {
      // Claimed by someone else between readdir and stat.
    }
  }
  return out.sort((a, b) => a.mtimeMs - b.mtimeMs || a.name.localeCompare(b.name));
}

/** A fresh file id: time-ordered, unique across processes and machines. */
export function newFileId(prefix: 'I' | 'O', at = Date.now()): string {
  return `${prefix}${at.toString(36).padStart(9, '0')}${randomBytes(5).toString('hex')}`;
}

/**
 * Work-folder name of a claimed file: its id and owner first ('@' cannot occur in either), so that
 * a crash between the claim and the ledger row can be recovered from the name alone.
 */
export function workName(fileId: string, partnerId: string, originalName: string): string {
  return `${fileId}@${partnerId}@${originalName}`;
}

export function parseWorkName(name: string): { fileId: string; partnerId: string; originalName: string } | null {
  const m = /^([^@]+)@([^@]+)@(.+)$/s.exec(name);
  return m ? { fileId: m[1]!, partnerId: m[2]!, originalName: m[3]! } : null;
}

/**
 * Claims a file by renaming it into the work folder. rename(2) is atomic: of two workers, one
 * wins and the other gets ENOENT and null.
 */
export async function claimFile(candidatePath: string, workDir: string, fileId: string, partnerId: string): Promise<string | null> {
  const target = path.join(workDir, workName(fileId, partnerId, path.basename(candidatePath)));
  try {
    await rename(candidatePath, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  await fsyncDir(workDir);
  return target;
}
