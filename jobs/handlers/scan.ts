// scan: claims complete files from every partner's inbound folder and gives each a checksum and a
// ledger row before anything else happens to it; then asks for its ingest.
import path from 'node:path';
import { claimFile, listCompleteInbound, newFileId, parseWorkName } from '../../spool/claim.ts';
import { sha256File } from '../../spool/checksum.ts';
import { readdir } from 'node:fs/promises';
import { jobId, type Handler, type JobContext } from '../context.ts';
import { reserveInboundNumbers } from '../../spool/ledger/index.ts';
import { HULFT_ORPHAN_GRACE_MS, isHulftLandingName } from '../../protocols/hulft/receive.ts';

export async function registerClaimedFile(ctx: JobContext, partnerId: string, fileId: string, workPath: string, originalName: string): Promise<void> {
  const { sha256, size } = await sha256File(workPath);
  const { ledger } = ctx.centre;
  if (await ctx.centre.files.get(fileId)) return;
  // Reserved here, in claim order, so that the numbers a file's outputs carry do not depend on
  // which worker routes it when: the same inbound files give byte-identical outbound files.
  const { inSeq, centreRefStart } = await reserveInboundNumbers(ledger, size);
  await ctx.centre.files.create(
    {
      id: fileId,
      partner_id: partnerId,
      direction: 'in',
      file_type: null,
      name: originalName,
      path: workPath,
      size,
      sha256,
      sender_code: null,
      receiver_code: null,
      file_seq: null,
      business_date: null,
      record_count: null,
      accepted_count: null,
      rejected_count: null,
      amount_total: null,
      parent_id: null,
      state: 'received',
      in_seq: inSeq,
      centre_ref_start: centreRefStart,
    },
    `claimed from ${partnerId}/inbound`,
  );
  await ctx.enqueue({ kind: 'ingest', input: { fileId }, jobId: jobId('ingest', fileId) });
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
    for (const candidate of await listCompleteInbound(centre.spool.inbound(partner.id), quietMs, Date.now())) {
      const landedId = landed.get(candidate.path);
      if (landedId) {
        await ctx.enqueue({ kind: 'ingest', input: { fileId: landedId }, jobId: jobId('ingest', landedId) });
        continue;
      }
      // A HULFT landing whose job is between its rename and its ledger row: the job finishes it.
      if (partner.hulft && isHulftLandingName(candidate.name) && Date.now() - candidate.mtimeMs < HULFT_ORPHAN_GRACE_MS) continue;
      const fileId = newFileId('I');
      const claimed = await claimFile(candidate.path, centre.spool.work, fileId, partner.id);
      if (!claimed) continue; // another worker took it
      await registerClaimedFile(ctx, partner.id, fileId, claimed, candidate.name);
      centre.log.info({ fileId, partner: partner.id, fileName: candidate.name, size: candidate.size }, 'file received');
    }
  }
};

/** Work files without a ledger row: claimed just before a crash. Returns how many were recovered. */
export async function recoverUnregisteredWork(ctx: JobContext): Promise<number> {
  let recovered = 0;
  for (const name of await readdir(ctx.centre.spool.work)) {
    const parsed = parseWorkName(name);
    if (!parsed || !parsed.fileId.startsWith('I')) continue;
    if (await ctx.centre.files.get(parsed.fileId)) continue;
    await registerClaimedFile(ctx, parsed.partnerId, parsed.fileId, path.join(ctx.centre.spool.work, name), parsed.originalName);
    recovered++;
  }
  return recovered;
}
