// One day's reconciliation: the three checks of the spec into one report and one ledger summary.
import { tokyoDate } from '../../spool/tree.ts';
import type { JobContext } from '../context.ts';
import { parseYmd } from '../jmanager/periods.ts';
import { checkFileTotals } from './file-totals.ts';
import { ReportWriter, reportPath, saveSummary, type ReconcileSummary } from './report.ts';
import { checkSentVsReturned, type DayWindow } from './sent-vs-returned.ts';
import { checkTerminalVsSales } from './terminal-vs-sales.ts';
import { materializeSentRecords } from '../sent-records.ts';
import { checkUtilityBills } from './utility-bills.ts';

const TOKYO_OFFSET_MS = 9 * 3600_000;

export function dayWindow(date: string, nowMs: number): DayWindow {
  const fromMs = parseYmd(date) - TOKYO_OFFSET_MS;
  const toMs = fromMs + 86_400_000;
  return { date, fromMs, toMs, asOfMs: Math.min(toMs, nowMs) };
}

export async function runReconciliation(ctx: JobContext, date = tokyoDate(ctx.now())): Promise<ReconcileSummary> {
  const started = Date.now();
  const { centre } = ctx;
  const day = dayWindow(date, ctx.now().getTime());
  await materializeSentRecords(centre.ledger); // the checks read sent_records
  const report = await ReportWriter.open(reportPath(centre.spool.root, date));
  try {
    await checkSentVsReturned(ctx, day, report.add);
    await checkUtilityBills(ctx, day, report.add);
    await checkTerminalVsSales(ctx, date, report.add);
    await checkFileTotals(ctx, day, report.add);
    await report.close();
  } catch (err) {
    await report.abandon();
    throw err;
  }
  const summary: ReconcileSummary = { date, reportPath: report.finalPath, discrepancies: report.total, counts: report.counts, tookMs: Date.now() - started };
  await saveSummary(centre.ledger, summary, Date.now());
  const level = summary.discrepancies ? 'warn' : 'info';
  centre.log[level]({ date, discrepancies: summary.discrepancies, counts: summary.counts, report: summary.reportPath }, 'reconciliation done');
  return summary;
}
