// Reconciliation 1, sent vs returned: every record sent in a 32 gets exactly one 33 result.
// Everything is filed under the business day of the sale as the centre sent it: the day the 32
// went out (sent_records.centre_date), not the day the check ran.
// - missing result: no result yet and the card company's deadline (resultDeadlineHours after the
//   32 was made) has passed by now on the centre clock; the day is reconciled again once a
//   deadline of its records passes (see daysToRecheck), so a late record lands in its own day;
// - duplicate, amount mismatch: results for records of that day;
// - unexpected result (nothing sent under its centreRef): the day it was received.
import type { Knex } from 'knex';
import type { JobContext } from '../context.ts';
import { addDays } from '../jmanager/periods.ts';
import type { Emit } from './discrepancy.ts';

export const LOOKBACK_DAYS = 32; // resultDeadlineHours is at most 31 days
const num = (v: unknown) => (v === null || v === undefined ? undefined : Number(v));
const str = (v: unknown) => (v === null || v === undefined ? undefined : String(v));

export interface DayWindow {
  date: string;
  fromMs: number;
  toMs: number;
  /** the moment deadlines are judged at: now on the centre clock */
  asOfMs: number;
}

function sentColumns(db: Knex): Knex.QueryBuilder {
  return db('sent_records as s')
    .join('files as f', 'f.id', 's.file_id')
    .select('s.centre_ref', 's.file_id', 's.source_file_id', 's.card_company_code', 's.merchant_no', 's.terminal_id', 's.slip_no', 's.use_date', 's.txn_type', 's.amount', 's.masked_card_no', 's.result_file_id', 's.result_amount', 's.result_count', 'f.partner_id', 'f.created_at');
}

export async function checkSentVsReturned(ctx: JobContext, day: DayWindow, emit: Emit): Promise<void> {
  const { db } = ctx.centre.ledger;
  const deadlineMs = (partnerId: string) => (ctx.routes.byId.get(partnerId)?.resultDeadlineHours ?? 48) * 3600_000;
  const base = (r: Record<string, unknown>) => ({
    merchantNo: str(r.merchant_no), terminalId: str(r.terminal_id), slipNo: str(r.slip_no), date: str(r.use_date), txnType: str(r.txn_type),
    cardCompanyCode: str(r.card_company_code), centreRef: str(r.centre_ref), fileId: str(r.file_id), sourceFileId: str(r.source_file_id), maskedCardNo: str(r.masked_card_no),
  });

  const outstanding = await sentColumns(db).where('s.result_count', 0).where('s.centre_date', day.date);
  for (const r of outstanding as Record<string, unknown>[]) {
    const due = Number(r.created_at) + deadlineMs(String(r.partner_id));
    if (due > day.asOfMs) continue;
    emit({ check: 1, category: 'missing result', ...base(r), expected: 'one 33 result', found: 'none', detail: `32 sent ${day.date}; deadline ${new Date(due).toISOString()} (${r.partner_id}) passed` });
  }

  const answered = await sentColumns(db)
    .where('s.centre_date', day.date)
    .where((q) => q.where('s.result_count', '>', 1).orWhereRaw('s.result_amount <> s.amount'));
  for (const r of answered as Record<string, unknown>[]) {
    const b = { ...base(r), resultFileId: str(r.result_file_id) };
    if (Number(r.result_count) > 1) emit({ check: 1, category: 'duplicate', ...b, expected: '1 result', found: `${r.result_count} results` });
    if (r.result_amount !== null && Number(r.result_amount) !== Number(r.amount)) emit({ check: 1, category: 'amount mismatch', ...b, expected: String(num(r.amount)), found: String(num(r.result_amount)), detail: 'result amount differs from the amount sent' });
  }

  const unmatched = await db('unmatched_results').where('received_date', day.date).orderBy('id');
  for (const r of unmatched as Record<string, unknown>[]) {
    emit({
      check: 1, category: 'unexpected result', merchantNo: str(r.merchant_no), terminalId: str(r.terminal_id), slipNo: str(r.slip_no), date: str(r.use_date),
      centreRef: str(r.centre_ref), resultFileId: str(r.result_file_id), found: `result ${r.result_code} for ${num(r.amount) ?? '?'}`, maskedCardNo: str(r.masked_card_no),
      detail: 'no record was sent with this centreRef',
    });
  }
}

/**
 * Earlier business days whose report would change now: a record of theirs still has no result and
 * its deadline passed since that day was last reconciled (or it never was).
 */
export async function daysToRecheck(ctx: JobContext, date: string, nowMs: number): Promise<string[]> {
  const { db } = ctx.centre.ledger;
  const deadlineMs = (partnerId: string) => (ctx.routes.byId.get(partnerId)?.resultDeadlineHours ?? 48) * 3600_000;
  const rows = (await db('sent_records as s')
    .join('files as f', 'f.id', 's.file_id')
    .where('s.result_count', 0)
    .where('s.centre_date', '>=', addDays(date, -LOOKBACK_DAYS))
    .where('s.centre_date', '<', date)
    .groupBy('s.centre_date', 'f.partner_id')
    .select('s.centre_date', 'f.partner_id', db.raw('min(f.created_at) as first_at'), db.raw('max(f.created_at) as last_at'))) as { centre_date: string; partner_id: string; first_at: number | string; last_at: number | string }[];
  const runs = new Map(((await db('reconcile_runs').where('report_date', '>=', addDays(date, -LOOKBACK_DAYS)).select('report_date', 'ran_at')) as { report_date: string; ran_at: number | string }[]).map((r) => [r.report_date, Number(r.ran_at)]));
  const days = new Set<string>();
  for (const r of rows) {
    const firstDue = Number(r.first_at) + deadlineMs(r.partner_id);
    const lastDue = Number(r.last_at) + deadlineMs(r.partner_id);
    const ranAt = runs.get(r.centre_date) ?? -Infinity;
    if (firstDue <= nowMs && lastDue > ranAt) days.add(r.centre_date);
  }
  return [...days].sort();
}
