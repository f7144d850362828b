// Picking up inbound files: only complete ones, and each by exactly one worker.
import { randomBytes } from 'node:crypto';
import { readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir } from './atomic.ts';
import { isTemporaryName } from './tree.ts';
import { encryptInPlace, keyRingFor } from './encrypted-file.ts';

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
      // mtimeMs has a fraction, `now` (Date.now()) none: a file written in this very millisecond
      // would look written in the future and be skipped even with no quiet period at all.
      if (now - Math.floor(s.mtimeMs) >= quietMs) out.push({ name: e.name, path: p, size: s.size, mtimeMs: s.mtimeMs });
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
 * Work-folder name of a claimed file: its id and owner ('@' cannot occur in either), never the
 * partner's own name (whatever its length or characters, it cannot break a rename). That name
 * goes into the ledger; between the claim and the ledger row it waits in a small note beside the
 * file, so that a crash in between can still be recovered with the right name.
 */
export function workName(fileId: string, partnerId: string): string {
  return `${fileId}@${partnerId}`;
}

/** The note holding a claimed file's original name until its ledger row exists. */
export function claimNotePath(workDir: string, fileId: string, partnerId: string): string {
  return path.join(workDir, `.${workName(fileId, partnerId)}.name`);
}

/** Parses a work name; older work names (id@partner@original) still parse. Dot names are notes. */
export function parseWorkName(name: string): { fileId: string; partnerId: string; originalName?: string } | null {
  if (name.startsWith('.')) return null;
  const m = /^([^@]+)@([^@/]+)(?:@(.+))?$/s.exec(name);
  return m ? { fileId: m[1]!, partnerId: m[2]!, ...(m[3] !== undefined ? { originalName: m[3] } : {}) } : null;
}

/** The original name of a claimed file: from its note, or from an old-style work name. */
export async function claimedOriginalName(workDir: string, workFileName: string): Promise<string | undefined> {
  const parsed = parseWorkName(workFileName);
  if (!parsed) return undefined;
  if (parsed.originalName !== undefined) return parsed.originalName;
  return readFile(claimNotePath(workDir, parsed.fileId, parsed.partnerId), 'utf8').catch(() => undefined);
}

/** The ledger row exists: the note is no longer needed. */
export async function dropClaimNote(workDir: string, fileId: string, partnerId: string): Promise<void> {
  await rm(claimNotePath(workDir, fileId, partnerId), { force: true });
}

/**
 * Claims a file by renaming it into the work folder. rename(2) is atomic: of two workers, one
 * wins and the other gets ENOENT and null. Durable when it returns, unless `syncFolder: false`
 * (the caller then fsyncs workDir before anything records the claim). The bytes stay as they came (encryptClaimedFile).
 */
export async function claimFile(candidatePath: string, workDir: string, fileId: string, partnerId: string, options: { syncFolder?: boolean } = {}): Promise<string | null> {
  const target = path.join(workDir, workName(fileId, partnerId));
  const note = claimNotePath(workDir, fileId, partnerId);
  await writeFile(note, path.basename(candidatePath), { mode: 0o600 });
  try {
    await rename(candidatePath, target);
  } catch (err) {
    await rm(note, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  if (options.syncFolder !== false) await fsyncDir(workDir); // a caller claiming several files syncs the folder once, before it records them
  return target;
}

/**
 * Encrypts a claimed file that a partner wrote into inbound itself (a local folder drop, HULFT's
 * own receive), when its spool encrypts; a file a listener landed is encrypted already.
 *
 * The claim leaves such a file as it came, and ingest calls this once it has validated it: the
 * validation then reads the plaintext as it is, and the file is encrypted in the same job that
 * reads it first (in parallel with the other files' jobs) instead of in the scan, which claims
 * every file one after another. It is encrypted before it is accepted, rejected or routed, so it
 * is never archived or sent plain; a crash before that leaves it plain in work/ (0600, in a 0700
 * folder) for the ingest that runs again.
 */
export async function encryptClaimedFile(workPath: string): Promise<void> {
  const ring = keyRingFor(workPath);
  if (ring) await encryptInPlace(workPath, ring);
}
