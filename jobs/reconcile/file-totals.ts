// Reconciliation 3, file totals: trailers against their records. Validation does the check (E105
// count, E106 amount) and rejects the file; this lists the day's files rejected for it.
import type { Emit } from './discrepancy.ts';
import type { JobContext } from '../context.ts';
import type { DayWindow } from './sent-vs-returned.ts';

export async function checkFileTotals(ctx: JobContext, day: DayWindow, emit: Emit): Promise<void> {
  const rows = await ctx.centre.ledger
    .db('files')
    .where('direction', 'in')
    .where('state', 'rejected')
    .where('created_at', '>=', day.fromMs)
    .where('created_at', '<', day.toMs)
    .where((q) => q.where('reason', 'like', '%E105%').orWhere('reason', 'like', '%E106%'))
    .select('id', 'partner_id', 'file_type', 'name', 'reason', 'record_count');
  for (const r of rows as Record<string, unknown>[]) {
    emit({ check: 3, category: 'file total mismatch', fileId: String(r.id), date: day.date, expected: 'trailer = records', found: String(r.reason), detail: `${r.partner_id} ${r.file_type} ${r.name}` });
  }
}
