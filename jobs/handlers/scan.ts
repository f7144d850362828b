// scan: claims complete files from every partner's inbound folder and gives each a checksum and a
// ledger row before anything else happens to it; then asks for its ingest.
import path from 'node:path';
import { claimFile, claimedOriginalName, dropClaimNote, listCompleteInbound, newFileId, parseWorkName } from '../../spool/claim.ts';
import { sha256File } from '../../spool/checksum.ts';
import { displayName, fileNameProblem } from '../../spool/names.ts';
import { quarantineFile } from '../../spool/quarantine.ts';
import { readdir } from 'node:fs/promises';
import { jobId, type Handler, type JobContext } from '../context.ts';
import { reserveInboundNumbersIn, sharedCommit } from '../../spool/ledger/index.ts';
import { fsyncDir } from '../../spool/atomic.ts';
import type { Knex } from 'knex';
import { HULFT_ORPHAN_GRACE_MS, isHulftLandingName } from '../../protocols/hulft/receive.ts';

/** The ledger row of an inbound file before ingest has read its header. */
function inboundRow(partnerId: string, fileId: string, originalName: string) {
  return {
    id: fileId,
    partner_id: partnerId,
    direction: 'in' as const,
    name: displayName(originalName),
    file_type: null,
    sender_code: null,
    receiver_code: null,
    file_seq: null,
    business_date: null,
    record_count: null,
    accepted_count: null,
    rejected_count: null,
    amount_total: null,
    parent_id: null,
  };
}

export interface ClaimedFile {
  partnerId: string;
  fileId: string;
  workPath: string;
  originalName: string;
}

/** How many claimed files one scan records in one commit. */
const REGISTER_AT_ONCE = 32;

/**
 * Gives claimed files (their claims durable) a checksum and a ledger row, drops their claim notes
 * and asks for their ingest. Their rows share one commit and one flush (sharedCommit; each file in
 * a savepoint of its own), written in the order given. Returns, in that order, undefined for a
 * file registered (or found registered) and the error of one that was not.
 */
export async function registerClaimedFiles(ctx: JobContext, files: readonly ClaimedFile[]): Promise<(Error | undefined)[]> {
  const { ledger } = ctx.centre;
  // One after another: 1 MiB read buffers for a whole batch at once would raise the peak RSS for no gain (hashing takes this thread's CPU either way).
  const sums: PromiseSettledResult<{ sha256: string; size: number }>[] = [];
  for (const f of files) sums.push(await sha256File(f.workPath).then((value) => ({ status: 'fulfilled' as const, value }), (reason: unknown) => ({ status: 'rejected' as const, reason })));
  const registered = await Promise.allSettled(
    files.map(async (f, i) => {
      const sum = sums[i]!;
      if (sum.status === 'rejected') throw sum.reason;
      const { sha256, size } = sum.value;
      // Numbers reserved here, in claim order (the writes below are queued in it), so that the
      // numbers a file's outputs carry do not depend on which worker routes it when: the same
      // inbound files give byte-identical outbound files. Durable (flushed) before the claim
      // note, which keeps the partner's name of the file, is dropped.
      return sharedCommit(
        ledger,
        async (trx) => {
          if (await trx('files').where({ id: f.fileId }).first('id')) return false;
          const { inSeq, centreRefStart } = await reserveInboundNumbersIn(trx as Knex.Transaction, ledger.dialect, size);
          return ctx.centre.files.create(
            { ...inboundRow(f.partnerId, f.fileId, f.originalName), path: f.workPath, size, sha256, state: 'received', in_seq: inSeq, centre_ref_start: centreRefStart },
            `claimed from ${f.partnerId}/inbound`,
            undefined,
            ctx.now().getTime(), // the centre clock: a replayed day's files belong to that day
            trx,
          );
        },
        { transaction: true },
      );
    }),
  );
  const outcomes: (Error | undefined)[] = [];
  for (const [i, f] of files.entries()) {
    const r = registered[i]!;
    if (r.status === 'rejected') {
      outcomes.push(r.reason as Error);
      continue;
    }
    await dropClaimNote(ctx.centre.spool.work, f.fileId, f.partnerId);
    await ctx.enqueue({ kind: 'ingest', input: { fileId: f.fileId }, jobId: jobId('ingest', f.fileId) });
    outcomes.push(undefined);
  }
  return outcomes;
}

export async function registerClaimedFile(ctx: JobContext, partnerId: string, fileId: string, workPath: string, originalName: string): Promise<void> {
  const [err] = await registerClaimedFiles(ctx, [{ partnerId, fileId, workPath, originalName }]);
  if (err) throw err;
}

/**
 * A file that cannot go through (an unusable name, a file the claim or the checksum cannot
 * handle) goes to error/ under our own name, with a rejected ledger row carrying the partner's
 * name and the reason, and an alert. The scan goes on with every other file.
 */
export async function quarantineInbound(ctx: JobContext, partnerId: string, fileId: string, currentPath: string, originalName: string, reason: string): Promise<void> {
  const { centre } = ctx;
  const alert = { alert: 'file-quarantined', partner: partnerId, fileId, fileName: displayName(originalName, 120), reason };
  let moved: string | undefined;
  try {
    moved = await quarantineFile(centre.spool.error, currentPath, `${fileId}@${partnerId}`);
    await centre.files.create(
      { ...inboundRow(partnerId, fileId, originalName), path: moved, size: null, sha256: null, state: 'rejected', reason: `quarantined: ${reason}`, in_seq: null, centre_ref_start: null },
      `quarantined from ${partnerId}: ${reason}`,
    );
    await dropClaimNote(centre.spool.work, fileId, partnerId);
    centre.log.error({ ...alert, path: moved }, 'inbound file moved to error/; the other files go on');
  } catch (err) {
    centre.log.error({ ...alert, err: (err as Error).message, path: moved }, 'inbound file could not be quarantined; the other files go on');
  }
}

export const scan: Handler = async (input, ctx) => {
  const { centre } = ctx;
  const quietMs = centre.config.quietPeriodSeconds * 1000;
  const only = typeof input.partnerId === 'string' ? [centre.partner(input.partnerId)] : centre.config.partners;
  for (const partner of only) {
    if (partner.send.length === 0) continue;
    // Files landed with their ledger row already (HULFT's post-receive job): only their ingest is due.
    const landed = new Map((await centre.files.list({ partnerId: partner.id, direction: 'in', state: 'received' })).map((f) => [f.path, f.id]));
    // Real time, not the centre clock: the quiet period is measured against file system times.
    let candidates;
    try {
      candidates = await listCompleteInbound(centre.spool.inbound(partner.id), quietMs, Date.now());
    } catch (err) {
      centre.log.error({ alert: 'inbound-unreadable', partner: partner.id, err: (err as Error).message }, 'cannot list inbound; other partners go on');
      continue;
    }
    for (let i = 0; i < candidates.length; i += REGISTER_AT_ONCE) {
      const claimed: (ClaimedFile & { size: number })[] = [];
      for (const candidate of candidates.slice(i, i + REGISTER_AT_ONCE)) {
        const landedId = landed.get(candidate.path);
        if (landedId) {
          await ctx.enqueue({ kind: 'ingest', input: { fileId: landedId }, jobId: jobId('ingest', landedId) });
          continue;
        }
        // A HULFT landing whose job is between its rename and its ledger row: the job finishes it.
        if (partner.hulft && isHulftLandingName(candidate.name) && Date.now() - candidate.mtimeMs < HULFT_ORPHAN_GRACE_MS) continue;
        const fileId = newFileId('I');
        const problem = fileNameProblem(candidate.name);
        if (problem) {
          await quarantineInbound(ctx, partner.id, fileId, candidate.path, candidate.name, problem);
          continue;
        }
        try {
          const workPath = await claimFile(candidate.path, centre.spool.work, fileId, partner.id, { syncFolder: false });
          if (workPath) claimed.push({ partnerId: partner.id, fileId, workPath, originalName: candidate.name, size: candidate.size });
          // null: another worker took it
        } catch (err) {
          await quarantineInbound(ctx, partner.id, fileId, candidate.path, candidate.name, (err as Error).message);
        }
      }
      if (claimed.length === 0) continue;
      await fsyncDir(centre.spool.work); // the claims are durable before anything records them
      const outcomes = await registerClaimedFiles(ctx, claimed);
      for (const [j, f] of claimed.entries()) {
        const err = outcomes[j];
        if (!err) {
          centre.log.info({ fileId: f.fileId, partner: partner.id, fileName: displayName(f.originalName, 120), size: f.size }, 'file received');
          continue;
        }
        if (await centre.files.get(f.fileId).catch(() => undefined)) throw err; // registered: a job failure, not the file's
        await quarantineInbound(ctx, partner.id, f.fileId, f.workPath, f.originalName, err.message);
      }
    }
  }
};

/** Work files without a ledger row: claimed just before a crash. Returns how many were recovered. */
export async function recoverUnregisteredWork(ctx: JobContext): Promise<number> {
  let recovered = 0;
  const work = ctx.centre.spool.work;
  for (const name of await readdir(work)) {
    const parsed = parseWorkName(name);
    if (!parsed || !parsed.fileId.startsWith('I')) continue;
    if (await ctx.centre.files.get(parsed.fileId)) continue;
    const originalName = (await claimedOriginalName(work, name)) ?? `(name lost in a crash; claimed as ${name})`;
    try {
      await registerClaimedFile(ctx, parsed.partnerId, parsed.fileId, path.join(work, name), originalName);
      recovered++;
    } catch (err) {
      if (await ctx.centre.files.get(parsed.fileId).catch(() => undefined)) throw err;
      await quarantineInbound(ctx, parsed.partnerId, parsed.fileId, path.join(work, name), originalName, (err as Error).message);
    }
  }
  return recovered;
}
