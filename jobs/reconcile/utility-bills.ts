// Reconciliation of utility billing: every bill forwarded to a card company must get exactly one
// 24 line. A bill still without its result once the card company's deadline has passed is
// reported by customer and bill number (beside reconciliation 1's "missing result" of its sale);
// a second result for one bill is reconciliation 1's "duplicate".
import type { JobContext } from '../context.ts';
import { materializeUtilityBills } from '../utility/bill-pack.ts';
import { addDays } from '../jmanager/periods.ts';
import type { Emit } from './discrepancy.ts';
import type { DayWindow } from './sent-vs-returned.ts';

const LOOKBACK_DAYS = 32;

export async function checkUtilityBills(ctx: JobContext, day: DayWindow, emit: Emit): Promise<void> {
  if (!ctx.centre.config.partners.some((p) => p.role === 'utility')) return;
  const { db } = ctx.centre.ledger;
  await materializeUtilityBills(ctx.centre.ledger);
  const rows = (await db('utility_bills as b')
    .join('sent_records as s', 's.centre_ref', 'b.centre_ref')
    .join('files as f', 'f.id', 's.file_id')
    .whereNull('b.answer_file_id')
    .whereBetween('s.centre_date', [addDays(day.date, -LOOKBACK_DAYS), day.date])
    .orderBy('b.centre_ref')
    .select('b.partner_id', 'b.customer_no', 'b.billing_month', 'b.bill_no', 'b.amount', 'b.use_date', 'b.source_file_id', 'b.centre_ref', 'b.card_company_code',
      's.merchant_no', 's.file_id', 's.slip_no', 'f.partner_id as company_id', 'f.created_at')) as Record<string, string | number>[];
  for (const r of rows) {
    const due = Number(r.created_at) + (ctx.routes.byId.get(String(r.company_id))?.resultDeadlineHours ?? 48) * 3600_000;
    if (due > day.asOfMs) continue;
    emit({
      check: 1, category: 'bill without result', merchantNo: String(r.merchant_no), slipNo: String(r.slip_no), date: String(r.use_date), txnType: '10',
      cardCompanyCode: String(r.card_company_code), centreRef: String(r.centre_ref), fileId: String(r.file_id), sourceFileId: String(r.source_file_id),
      expected: 'one 24 line', found: 'none',
      detail: `${r.partner_id} customer ${r.customer_no} bill ${r.billing_month}/${r.bill_no} (${Number(r.amount)} yen); deadline ${new Date(due).toISOString()} (${r.company_id})`,
    });
  }
}
