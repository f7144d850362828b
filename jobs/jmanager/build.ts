// The jmanager job's work: for every head office (a merchant partner with jmanagerCycles) and each
// of its cycles, the 71 file of the last period that ended before the run date, published once per
// (partner, cycle, period) and handed to delivery like any outbound file.
import path from 'node:path';
import { rm } from 'node:fs/promises';
import { temporaryPathFor } from '../../spool/atomic.ts';
import { sha256File } from '../../spool/checksum.ts';
import { tokyoDate, tokyoTime } from '../../spool/tree.ts';
import type { PartnerConfig } from '../config.ts';
import type { JobContext } from '../context.ts';
import { planPeriodOutbound, publishOutbound, requestDelivery } from '../outbound.ts';
import { withAggregates } from './aggregates.ts';
import { hasTerminalTxns } from '../terminal/pack.ts';
import { writeJmanagerFile } from './file.ts';
import { lastCompletedPeriod, type Period } from './periods.ts';
import { checkBusinessDate } from '../business-day.ts';

export interface BuiltJmanagerFile {
  partnerId: string;
  period: Period;
  fileId: string;
  name: string;
  /** false when an earlier run published it already */
  created: boolean;
  dataRows: number;
}

export function headOffices(ctx: JobContext): PartnerConfig[] {
  return ctx.centre.config.partners.filter((p) => p.role === 'merchant' && p.jmanagerCycles.length > 0);
}

/** Builds (or finds) the 71 file of one head office and period. */
export async function buildJmanagerFile(ctx: JobContext, partner: PartnerConfig, period: Period): Promise<BuiltJmanagerFile> {
  const { centre } = ctx;
  const plan = await planPeriodOutbound(ctx, partner, '71', period);
  const base = { partnerId: partner.id, period, fileId: plan.id, name: plan.name };
  const existing = await centre.files.get(plan.id);
  if (existing) return { ...base, created: false, dataRows: Number(existing.record_count ?? 0) };
  const format = partner.formats['71'];
  const now = ctx.now();
  const temp = temporaryPathFor(path.join(centre.spool.outbound(partner.id), plan.name));
  try {
    const result = await withAggregates(centre.ledger, { merchantNos: partner.merchantNos, from: period.from, to: period.to }, (rows) => writeJmanagerFile(
      rows,
      {
        period, layout: format?.layout, encoding: format?.encoding, framing: format?.framing,
        senderCode: centre.config.centre.code, senderName: centre.config.centre.name, receiverCode: partner.code,
        createdDate: tokyoDate(now), createdTime: tokyoTime(now), fileSeq: plan.fileSeq,
      },
      temp,
    ));
    const { sha256, size } = await sha256File(temp);
    await publishOutbound(ctx, {
      plan, partner, fileType: '71', tempPath: temp, size, sha256, recordCount: result.dataRows, amountTotal: result.netAmount, parentId: null,
      reason: `jmanager ${period.cycle} ${period.from}-${period.to}: ${result.terminalRows} terminal rows`,
    });
    return { ...base, created: true, dataRows: result.dataRows };
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/**
 * Whether the terminal data of a period's last day is in: a loaded 81 file made after that day, or
 * terminal transactions of that day or later. A 71 built before that would freeze an incomplete
 * aggregate under a name that is then never built again.
 */
export async function terminalDataLoaded(ctx: JobContext, lastDay: string): Promise<boolean> {
  const { db } = ctx.centre.ledger;
  const file = await db('terminal_loads as l').join('files as f', 'f.id', 'l.file_id').where('f.business_date', '>', lastDay).first(db.raw('1 as x'));
  if (file) return true;
  return hasTerminalTxns(ctx.centre.ledger, '>=', lastDay);
}

export interface BuildDueOptions {
  /** Build even when the period's terminal data has not been loaded (the operator knows it never will be). */
  force?: boolean;
}

/** Every head office's due 71 files for `runDate`; each is requested for delivery. */
export async function buildDueJmanagerFiles(ctx: JobContext, runDate: string, options: BuildDueOptions = {}): Promise<BuiltJmanagerFile[]> {
  // A run date in the future would build periods that have not ended.
  checkBusinessDate(runDate, ctx.now(), 'jmanager run date');
  const built: BuiltJmanagerFile[] = [];
  const ready = new Map<string, boolean>();
  for (const partner of headOffices(ctx)) {
    for (const cycle of new Set(partner.jmanagerCycles)) {
      const period = lastCompletedPeriod(cycle, runDate);
      if (!options.force) {
        if (!ready.has(period.to)) ready.set(period.to, await terminalDataLoaded(ctx, period.to));
        if (!ready.get(period.to)) {
          ctx.centre.log.warn({ partner: partner.id, cycle, from: period.from, to: period.to }, `jmanager: 71 for ${period.from}-${period.to} not built yet: no terminal data (81) loaded for ${period.to}; it is built once that arrives (or with jmanager build --force)`);
          continue;
        }
      }
      const file = await buildJmanagerFile(ctx, partner, period);
      built.push(file);
      // Asked again on a retry too: a crash between publishing and enqueueing must not strand it.
      await requestDelivery(ctx, file.fileId);
    }
  }
  if (built.some((b) => b.created)) ctx.centre.log.info({ runDate, files: built.filter((b) => b.created).map((b) => b.fileId) }, 'jmanager files built');
  return built;
}
