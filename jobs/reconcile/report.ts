// The reconciliation report: a CSV in UTF-8 with a BOM (so that Excel in Japan opens it as UTF-8)
// under <spoolRoot>/reports, published atomically, and its summary row in the ledger.
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { maskCardNumbersIn } from '../../formats/index.ts';
import { publishFile, temporaryPathFor } from '../../spool/atomic.ts';
import { writeTransaction, type Ledger } from '../../spool/ledger/index.ts';
import { CATEGORIES, REPORT_COLUMNS, type Category, type Discrepancy } from './discrepancy.ts';

export function reportPath(spoolRoot: string, date: string): string {
  return path.join(spoolRoot, 'reports', `reconcile-${date}.csv`);
}

/** Free-text columns: a run of 12+ digits there is masked, so no whole card number gets through. */
const FREE_TEXT = new Set(['expected', 'found', 'detail']);

/**
 * A spreadsheet runs a cell that starts with = + - @ (or a tab or CR before one) as a formula: such
 * a cell gets a leading apostrophe, which shows it as text (OWASP CSV injection). Plain numbers,
 * negative amounts included, stay numbers.
 */
export function neutraliseFormula(s: string): string {
  if (/^[-+]?\d+(\.\d+)?$/.test(s)) return s;
  return /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
}

export function csvCell(v: unknown, free: boolean): string {
  if (v === undefined || v === null) return '';
  const s = neutraliseFormula(free ? maskCardNumbersIn(String(v)) : String(v));
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export class ReportWriter {
  readonly counts = Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<Category, number>;
  total = 0;
  private readonly temp: string;
  private readonly out: ReturnType<typeof createWriteStream>;
  private lines: string[] = [];
  private failed: Error | null = null;

  private constructor(readonly finalPath: string) {
    this.temp = temporaryPathFor(finalPath);
    // Masked numbers only, but owner-only like everything under the spool.
    this.out = createWriteStream(this.temp, { mode: 0o600 });
    this.out.on('error', (err) => (this.failed = err));
    this.out.write('\ufeff' + REPORT_COLUMNS.map(([, h]) => h).join(',') + '\r\n');
  }

  static async open(finalPath: string): Promise<ReportWriter> {
    await mkdir(path.dirname(finalPath), { recursive: true, mode: 0o700 });
    return new ReportWriter(finalPath);
  }

  add = (d: Discrepancy): void => {
    this.counts[d.category]++;
    this.total++;
    this.lines.push(REPORT_COLUMNS.map(([k]) => csvCell(d[k], FREE_TEXT.has(k))).join(',') + '\r\n');
    if (this.lines.length >= 1000) this.drain();
  };

  private drain(): void {
    if (this.lines.length) this.out.write(this.lines.join(''));
    this.lines = [];
  }

  async close(): Promise<void> {
    this.drain();
    await new Promise<void>((resolve, reject) => this.out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    if (this.failed) throw this.failed;
    await publishFile(this.temp, this.finalPath);
  }

  async abandon(): Promise<void> {
    this.out.destroy();
    await rm(this.temp, { force: true });
  }
}

export interface ReconcileSummary {
  date: string;
  reportPath: string;
  discrepancies: number;
  counts: Record<Category, number>;
  /** checks that could not run for the day (no data), said so rather than shown as 0 */
  notRun?: string[];
  /** how the day was judged */
  notes?: string[];
  tookMs: number;
}

/** One row per reconciled date; a rerun replaces it. */
export async function saveSummary(ledger: Ledger, s: ReconcileSummary, ranAt: number): Promise<void> {
  await writeTransaction(ledger, async (trx) => {
    await trx('reconcile_runs').where({ report_date: s.date }).delete();
    await trx('reconcile_runs').insert({ report_date: s.date, ran_at: ranAt, report_path: s.reportPath, discrepancies: s.discrepancies, counts: JSON.stringify(s.counts) });
  });
}
