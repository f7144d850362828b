// Taking over what a dead process left. Every file in a non-final state has a holder: the process
// whose transition put it there holds its next step (in memory, on the embedded runner), and a
// 'sending' file is held by the process named in its deliveries row. When that holder is gone
// (killed: pid not running, or a different process under its pid), the work is put back at once;
// a live holder keeps it, and the caller reports it. On BullMQ the next step is a job in Redis with
// a deterministic id, so re-enqueueing it is always safe (a no-op while the job exists).
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseWorkName } from '../spool/claim.ts';
import { archiveFile } from '../spool/archive.ts';
import { holderState, isSelf, parseHolder, type FileRow, type FileState } from '../spool/ledger/index.ts';
import { isTemporaryName } from '../spool/tree.ts';
import { jobId, type JobContext } from './context.ts';
import { HOLDER_STALE_MS, lastDelivery, pushHolderGone } from './handlers/deliver.ts';
import { recoverUnregisteredWork } from './handlers/scan.ts';

export interface HeldWork {
  fileId: string;
  state: FileState;
  /** host:pid:start of the live process that holds it */
  holder: string;
}

export interface RecoveryReport {
  /** work files claimed just before a crash, given their ledger row */
  recovered: number;
  requeued: number;
  /** in a non-final state, held by another live process: left alone */
  held: HeldWork[];
}

export interface RecoveryOptions {
  /** Embedded runner: leave alone what a live process holds (its next step is in its memory). */
  honourHolders: boolean;
}

/** The actor of a file's last transition (the process that holds its next step) and when. */
async function lastActor(ctx: JobContext, fileId: string): Promise<{ actor: string; at: number } | undefined> {
  const row = await ctx.centre.ledger.db('transitions').where({ file_id: fileId }).orderBy('id', 'desc').first('actor', 'at');
  return row ? { actor: row.actor as string, at: Number(row.at) } : undefined;
}

/** Alive on this host; on another host (which we cannot look at), acting within HOLDER_STALE_MS. */
function heldByOtherLiveProcess(last: { actor: string; at: number } | undefined, now: number): boolean {
  const holder = parseHolder(last?.actor);
  if (!holder || isSelf(holder)) return false;
  const state = holderState(holder);
  return state === 'alive' || (state === 'unknown' && now - last!.at < HOLDER_STALE_MS);
}

/** Re-enqueues every unfinished file whose holder is gone (or all of them on BullMQ). */
export async function recoverOrphans(ctx: JobContext, options: RecoveryOptions): Promise<RecoveryReport> {
  const { centre } = ctx;
  const now = ctx.now().getTime();
  const report: RecoveryReport = { recovered: await recoverUnregisteredWork(ctx), requeued: 0, held: [] };
  const held = async (f: FileRow): Promise<boolean> => {
    if (!options.honourHolders) return false;
    const last = await lastActor(ctx, f.id);
    if (!heldByOtherLiveProcess(last, Date.now())) return false;
    report.held.push({ fileId: f.id, state: f.state, holder: last!.actor });
    return true;
  };
  for (const f of await centre.files.list({ state: 'received' })) {
    if (await held(f)) continue;
    await ctx.enqueue({ kind: 'ingest', input: { fileId: f.id }, jobId: jobId('ingest', f.id) });
    report.requeued++;
  }
  for (const f of await centre.files.list({ state: 'accepted' })) {
    if (await held(f)) continue;
    await ctx.enqueue({ kind: 'route', input: { fileId: f.id }, jobId: jobId('route', f.id) });
    report.requeued++;
  }
  for (const f of await centre.files.list({ state: 'sending' })) {
    // The deliver handler takes the push over when its holder is gone, and leaves it otherwise.
    const row = await lastDelivery(centre.ledger.db, f.id);
    if (row && !pushHolderGone(row) && !isSelf(parseHolder(row.holder))) {
      report.held.push({ fileId: f.id, state: f.state, holder: row.holder ?? '' });
      continue;
    }
    await ctx.enqueue({ kind: 'deliver', input: { fileId: f.id, force: true }, jobId: jobId('deliver', f.id, 'takeover', row?.id ?? 0) });
    report.requeued++;
  }
  for (const f of await centre.files.list({ state: 'ready', direction: 'out' })) {
    const partner = ctx.routes.byId.get(f.partner_id);
    if (!partner || partner.delivery.protocol === 'pull' || partner.schedule) continue;
    if (await held(f)) continue;
    const wait = f.next_attempt_at ? Math.max(0, f.next_attempt_at - now) : 0;
    await ctx.enqueue({ kind: 'deliver', input: { fileId: f.id, force: true }, jobId: jobId('deliver', f.id, f.attempts + 1), delayMs: wait || undefined });
    report.requeued++;
  }
  return report;
}

/**
 * Removes what we wrote and no longer need, once its file is settled: `*.rejects.json` of files
 * past 'accepted', work files of files already archived (a kill between the commit and the
 * archive moves them to the archive now), and temporaries in work/ and in the outbound folders.
 * Temporaries are only removed when no other live process holds unfinished inbound work (it
 * could be writing them) and they are older than `temporariesBefore`.
 */
export async function removeLeftovers(ctx: JobContext, options: { temporariesBefore: number; othersAtWork: boolean }): Promise<number> {
  const { centre } = ctx;
  let removed = 0;
  const work = centre.spool.work;
  for (const name of await readdir(work).catch(() => [] as string[])) {
    const full = path.join(work, name);
    const rejects = /^(.+)\.rejects\.json$/.exec(name);
    if (rejects) {
      const f = await centre.files.get(rejects[1]!);
      if (!f || (f.state !== 'received' && f.state !== 'accepted')) {
        await rm(full, { force: true });
        removed++;
      }
      continue;
    }
    const parsed = parseWorkName(name);
    if (parsed) {
      const f = await centre.files.get(parsed.fileId);
      if (f && (f.state === 'routed' || f.state === 'rejected') && f.path === full) {
        const archived = await archiveFile(centre.spool, full, name);
        await centre.files.update(f.id, { path: archived, archived_at: Date.now() });
        removed++;
      }
      continue;
    }
    if (isTemporaryName(name) && !options.othersAtWork && (await olderThan(full, options.temporariesBefore))) {
      // recursive: the portal's CSV scratch folders (.csv-*) live here too
      await rm(full, { force: true, recursive: true });
      removed++;
    }
  }
  if (!options.othersAtWork) {
    for (const partner of centre.config.partners) {
      const dir = centre.spool.outbound(partner.id);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        if (!isTemporaryName(name)) continue;
        const full = path.join(dir, name);
        if (!(await olderThan(full, options.temporariesBefore))) continue;
        await rm(full, { force: true });
        removed++;
      }
    }
  }
  if (removed) centre.log.info({ removed }, 'removed leftovers of settled files');
  return removed;
}

async function olderThan(p: string, at: number): Promise<boolean> {
  try {
    const s = await stat(p);
    return s.isFile() && s.mtimeMs < at;
  } catch {
    return false;
  }
}
