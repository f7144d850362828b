// Reconciliation 1, sent vs returned: every record sent in a 32 gets exactly one 33 result.
// - missing result: no result yet and the card company's deadline (resultDeadlineHours after the
//   32 was made) has passed by the end of the day (or now, if earlier); looked for over the last
//   32 days of sending, so an outstanding record is reported every day until its result comes;
// - unexpected result, duplicate, amount mismatch: about results received on the day.
import type { Knex } from 'knex';
import type { JobContext } from '../context.ts';
import { addDays } from '../jmanager/periods.ts';
import type { Emit } from './discrepancy.ts';

const LOOKBACK_DAYS = 32; // resultDeadlineHours is at most 31 days
const num = (v: unknown) => (v === null || v === undefined ? undefined : Number(v));
const str = (v: unknown) => (v === null || v === undefined ? undefined : String(v));

export interface DayWindow {
  date: string;
  fromMs: number;
  toMs: number;
  /** the moment deadlines are judged at: the end of the day, or now if that is earlier */
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

  const outstanding = await sentColumns(db).where('s.result_count', 0).whereBetween('s.centre_date', [addDays(day.date, -LOOKBACK_DAYS), day.date]);
  for (const r of outstanding as Record<string, unknown>[]) {
    const due = Number(r.created_at) + deadlineMs(String(r.partner_id));
    if (due > day.asOfMs) continue;
    emit({ check: 1, category: 'missing result', ...base(r), expected: 'one 33 result', found: 'none', detail: `deadline ${new Date(due).toISOString()} (${r.partner_id})` });
  }

  const received = await sentColumns(db)
    .join('files as rf', 'rf.id', 's.result_file_id')
    .where('rf.created_at', '>=', day.fromMs)
    .where('rf.created_at', '<', day.toMs)
    .where((q) => q.where('s.result_count', '>', 1).orWhereRaw('s.result_amount <> s.amount'));
  for (const r of received as Record<string, unknown>[]) {
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
