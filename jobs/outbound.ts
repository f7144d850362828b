// Publishing an outbound file for a partner: deterministic id and name, the bytes published
// atomically in the partner's outbound folder, then the ledger row in state 'ready'. A retry after
// a crash at any point republishes the same bytes under the same name and finds the row there.
import path from 'node:path';
import { rm } from 'node:fs/promises';
import { publishFile } from '../spool/atomic.ts';
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { flushLedger, reserveSequenceOnce, writeTransaction, type FileRow } from '../spool/ledger/index.ts';
import { tokyoDate } from '../spool/tree.ts';
import type { PartnerConfig } from './config.ts';
import { jobId, type JobContext } from './context.ts';

export interface OutboundPlan {
  id: string;
  name: string;
  fileSeq: string;
  businessDate: string;
}

/**
 * Id, header fileSeq and name of the outbound file made from `source` for `partner`. The fileSeq
 * is the source's inbound sequence number: unique and rising for every receiver (with gaps), and
 * fixed at claim time, so a retry or another runner makes the same file.
 */
export function planOutbound(ctx: JobContext, source: FileRow, partner: PartnerConfig, fileType: string): OutboundPlan {
  if (source.in_seq === null) throw new Error(`file ${source.id} has no inbound sequence number`);
  const fileSeq = String(source.in_seq % 1_000_000).padStart(6, '0');
  const businessDate = tokyoDate(ctx.now());
  return { id: `O${source.id}.${partner.id}.${fileType}`, fileSeq, businessDate, name: `T${fileType}_${businessDate}_${fileSeq}.dat` };
}

/**
 * Like planOutbound, for a file made from the ledger rather than from one inbound file (a 71 per
 * head office, cycle and period): the id is the key, so the same period is published once; the
 * fileSeq is reserved once per id, so a retry writes the same header.
 */
export async function planPeriodOutbound(ctx: JobContext, partner: PartnerConfig, fileType: string, key: { cycle: string; from: string; to: string }): Promise<OutboundPlan> {
  let id = `P${fileType}${key.cycle}${key.from}${key.to}.${partner.id}`;
  if (id.length > 64) id = `${id.slice(0, 47)}.${createHash('sha256').update(id).digest('hex').slice(0, 16)}`; // files.id is 64 wide
  const seq = await reserveSequenceOnce(ctx.centre.ledger, id, `fileSeq:${fileType}:${partner.id}`, 1);
  const fileSeq = String(seq % 1_000_000n).padStart(6, '0');
  return { id, fileSeq, businessDate: tokyoDate(ctx.now()), name: `T${fileType}_${key.cycle}_${key.from}-${key.to}.dat` };
}

export interface PublishedOutbound {
  plan: OutboundPlan;
  partner: PartnerConfig;
  fileType: string;
  tempPath: string;
  size: number;
  sha256: string;
  recordCount: number;
  amountTotal: number | null;
  /** the inbound file it was made from; null for files made from the ledger (71) */
  parentId: string | null;
  reason: string;
}

/** Moves a finished temporary file into the partner's outbound folder and records it as ready. */
export async function publishOutbound(ctx: JobContext, out: PublishedOutbound): Promise<void> {
  await publishOutbounds(ctx, [out]);
}

/**
 * Publishes several outbound files made by one job, and records them as ready in one
 * transaction, with whatever else the job commits with them (`inTransaction`: the route's
 * 'routed'). The ledger is flushed first: a partner that pulls can see a file the moment it is
 * published, so the numbers and states it was made from must survive a power loss by then.
 */
export async function publishOutbounds(ctx: JobContext, outs: readonly PublishedOutbound[], options: { inTransaction?: (trx: Knex.Transaction) => Promise<void>; lazy?: boolean } = {}): Promise<void> {
  const { centre } = ctx;
  const existing = new Set<string>();
  for (let i = 0; i < outs.length; i += 500) {
    const ids = outs.slice(i, i + 500).map((o) => o.plan.id);
    for (const row of (await centre.ledger.db('files').whereIn('id', ids).select('id')) as { id: string }[]) existing.add(row.id);
  }
  const fresh = outs.filter((o) => !existing.has(o.plan.id));
  await Promise.all(outs.filter((o) => existing.has(o.plan.id)).map((o) => rm(o.tempPath, { force: true }))); // published by an earlier attempt
  if (fresh.length) await flushLedger(centre.ledger);
  await Promise.all(fresh.map((out) => publishFile(out.tempPath, path.join(centre.spool.outbound(out.partner.id), out.plan.name)))); // their fsyncs overlap
  if (!fresh.length && !options.inTransaction) return;
  await writeTransaction(
    centre.ledger,
    async (trx) => {
      const rows = fresh.map((out) => ({
        file: {
          id: out.plan.id,
          partner_id: out.partner.id,
          direction: 'out' as const,
          file_type: out.fileType,
          name: out.plan.name,
          path: path.join(centre.spool.outbound(out.partner.id), out.plan.name),
          size: out.size,
          sha256: out.sha256,
          sender_code: centre.config.centre.code,
          receiver_code: out.partner.code,
          file_seq: out.plan.fileSeq,
          business_date: out.plan.businessDate,
          record_count: out.recordCount,
          accepted_count: out.recordCount,
          rejected_count: 0,
          amount_total: out.amountTotal,
          parent_id: out.parentId,
          state: 'ready' as const,
        },
        reason: out.reason,
      }));
      await centre.files.createMany(rows, trx, ctx.now().getTime()); // the centre clock: result deadlines count from when the centre made it
      await options.inTransaction?.(trx);
    },
    { lazy: options.lazy },
  );
}

export async function requestDelivery(ctx: JobContext, fileId: string): Promise<void> {
  await ctx.enqueue({ kind: 'deliver', input: { fileId }, jobId: jobId('deliver', fileId, 1) });
}

/**
 * Asks for the deliveries of the files one job made from `sourceId` (a route's outputs) as one
 * job: their pushes run side by side and share their ledger commits (the deliver handler).
 */
export async function requestDeliveries(ctx: JobContext, sourceId: string, fileIds: readonly string[]): Promise<void> {
  if (fileIds.length === 0) return;
  if (fileIds.length === 1) return requestDelivery(ctx, fileIds[0]!);
  await ctx.enqueue({ kind: 'deliver', input: { fileIds: [...fileIds] }, jobId: jobId('deliver', sourceId, 'outputs') });
}
