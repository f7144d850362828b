// `tsunagi reconcile --date YYYYMMDD`: the three reconciliations for one business date; the
// CSV report path and the counts per category; exit 3 when anything disagrees.
import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { createLogger } from '../../jobs/log.ts';
import { addDays } from '../../jobs/jmanager/periods.ts';
import { checkBusinessDate } from '../../jobs/business-day.ts';
import { centreClock } from '../../jobs/runtime.ts';
import { runReconciliation } from '../../jobs/reconcile/run.ts';
import type { ReconcileSummary } from '../../jobs/reconcile/report.ts';
import { tokyoDate } from '../../spool/tree.ts';
import { EXIT_OK, EXIT_REJECTED, parseCommandArgs, printJson, UsageError, type Command } from '../cli-kit.ts';

const usage = 'tsunagi reconcile [--date YYYYMMDD] [--json] [--config FILE]   (default: yesterday)';

export function formatReconcileSummary(s: ReconcileSummary): string {
  const lines = [`reconciliation ${s.date}: ${s.discrepancies} discrepancies (${(s.tookMs / 1000).toFixed(1)} s)`];
  for (const [category, n] of Object.entries(s.counts)) if (n) lines.push(`  ${category.padEnd(26)}${n}`);
  for (const line of s.notRun ?? []) lines.push(`  ${line}`);
  for (const line of s.notes ?? []) lines.push(`  (${line})`);
  lines.push(`report: ${s.reportPath}`);
  return lines.join('\n') + '\n';
}

export const command: Command = {
  summary: 'reconcile one business date: sent vs returned, terminal vs sales, file totals (exit 3 on discrepancies)',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { config: { type: 'string' }, date: { type: 'string' }, json: { type: 'boolean' } }, usage);
    if (positionals.length) throw new UsageError(`unexpected ${positionals.join(' ')}\nusage: ${usage}`);
    const now = centreClock()();
    const date = values.date === undefined ? addDays(tokyoDate(now), -1) : checkBusinessDate(values.date, now, '--date');
    const centre = await openCentre(values.config, { log: createLogger({ level: process.env.TSUNAGI_LOG_LEVEL ?? 'warn', destination: process.stderr }) });
    const engine = await startEngine(centre, { workers: false });
    try {
      const summary = await runReconciliation(engine.ctx, date);
      if (values.json) printJson(summary);
      else process.stdout.write(formatReconcileSummary(summary));
      return summary.discrepancies > 0 ? EXIT_REJECTED : EXIT_OK;
    } finally {
      await engine.stop();
      await centre.close();
    }
  },
};
