// One day's reconciliation: the three checks of the spec into one report and one ledger summary.
import { tokyoDate } from '../../spool/tree.ts';
import type { JobContext } from '../context.ts';
import { parseYmd } from '../jmanager/periods.ts';
import { checkFileTotals } from './file-totals.ts';
import { ReportWriter, reportPath, saveSummary, type ReconcileSummary } from './report.ts';
import { checkSentVsReturned, daysToRecheck, type DayWindow } from './sent-vs-returned.ts';
import { checkTerminalVsSales, hasTerminalData } from './terminal-vs-sales.ts';
import { materializeSentRecords } from '../sent-records.ts';
import { checkUtilityBills } from './utility-bills.ts';
import { checkBusinessDate } from '../business-day.ts';

const TOKYO_OFFSET_MS = 9 * 3600_000;

export function dayWindow(date: string, nowMs: number): DayWindow {
  const fromMs = parseYmd(date) - TOKYO_OFFSET_MS;
  const toMs = fromMs + 86_400_000;
  return { date, fromMs, toMs, asOfMs: nowMs };
}

export async function runReconciliation(ctx: JobContext, date = tokyoDate(ctx.now())): Promise<ReconcileSummary> {
  const started = Date.now();
  const { centre } = ctx;
  const now = ctx.now();
  checkBusinessDate(date, now, 'reconciliation date');
  const day = dayWindow(date, now.getTime());
  await materializeSentRecords(centre.ledger); // the checks read sent_records
  const report = await ReportWriter.open(reportPath(centre.spool.root, date));
  const notes = [`sent vs returned: results of the 32s sent on ${date}, deadlines judged as of ${now.toISOString()}`];
  const notRun: string[] = [];
  try {
    await checkSentVsReturned(ctx, day, report.add);
    await checkUtilityBills(ctx, day, report.add);
    if (await hasTerminalData(centre.ledger, date)) await checkTerminalVsSales(ctx, date, report.add);
    else notRun.push(`terminal vs sales: not run, no 81 terminal data for ${date}`);
    await checkFileTotals(ctx, day, report.add);
    await report.close();
  } catch (err) {
    await report.abandon();
    throw err;
  }
  const summary: ReconcileSummary = { date, reportPath: report.finalPath, discrepancies: report.total, counts: report.counts, notRun, notes, tookMs: Date.now() - started };
  await saveSummary(centre.ledger, summary, now.getTime());
  const level = summary.discrepancies ? 'warn' : 'info';
  centre.log[level]({ date, discrepancies: summary.discrepancies, counts: summary.counts, notRun, report: summary.reportPath }, 'reconciliation done');
  return summary;
}

/** `date`, then every earlier day whose report a passed deadline changed since it last ran. */
export async function reconcileWithRechecks(ctx: JobContext, date: string): Promise<ReconcileSummary[]> {
  const summaries = [await runReconciliation(ctx, date)];
  for (const earlier of await daysToRecheck(ctx, date, ctx.now().getTime())) summaries.push(await runReconciliation(ctx, earlier));
  return summaries;
}
