// Billing results (33 -> 24): the records of a card company's 33 that carry a utility's merchant
// number are answered to that utility by customer number, one 24 line per forwarded bill. A bill
// already answered by another 24 (a second result for it) gets no second line; reconciliation
// reports the duplicate. A retry of the same 33 writes the same 24.
import type { FileRow } from '../../spool/ledger/index.ts';
import type { PartnerConfig } from '../config.ts';
import type { JobContext } from '../context.ts';
import { planOutbound } from '../outbound.ts';
import type { ReturnedResult } from '../sent-records.ts';
import { maskCardNumber } from '../../formats/index.ts';
import { materializeUtilityBills } from './bill-pack.ts';
import { formatOf, OutboundWriter, readAsStandard, utilityMerchants } from './common.ts';

const RESULT_CODES = new Set(['00', '10', '11', '12', '20', '30', '90']);

interface BillRow { partner_id: string; customer_no: string; billing_month: string; bill_no: string; card_last4: string; centre_ref: string | number; answer_file_id: string | null }

export interface UtilityAnswers {
  outputs: string[];
  results: ReturnedResult[];
}

export async function answerBillingResults(ctx: JobContext, file: FileRow, sender: PartnerConfig, skip: Set<number>): Promise<UtilityAnswers> {
  const byMerchant = utilityMerchants(ctx);
  if (byMerchant.size === 0) return { outputs: [], results: [] };
  const db = ctx.centre.ledger.db;
  await materializeUtilityBills(ctx.centre.ledger); // the bills are looked up by centreRef below
  const writers = new Map<string, OutboundWriter>();
  const results: ReturnedResult[] = [];
  let pending: { fields: Record<string, string>; utility: PartnerConfig }[] = [];
  const answered: Record<string, { planId: string; refs: string[] }> = {};

  const processChunk = async () => {
    const batch = pending;
    pending = [];
    if (batch.length === 0) return;
    const refs = [...new Set(batch.map((b) => String(Number(b.fields.centreRef))))];
    const bills = new Map<string, BillRow>();
    for (let i = 0; i < refs.length; i += 900) {
      for (const r of (await db('utility_bills').whereIn('centre_ref', refs.slice(i, i + 900))) as BillRow[]) bills.set(String(r.centre_ref), r);
    }
    for (const { fields: f, utility } of batch) {
      const ref = String(Number(f.centreRef));
      results.push({
        centreRef: f.centreRef!, resultCode: f.resultCode ?? '', amount: Number.isFinite(Number(f.amount)) ? Math.abs(Number(f.amount)) : undefined,
        merchantNo: f.merchantNo?.trim(), terminalId: f.terminalId?.trim(), slipNo: f.slipNo, useDate: f.useDate, maskedCardNo: f.cardNo ? maskCardNumber(f.cardNo) : undefined,
      });
      const bill = bills.get(ref);
      if (!bill || bill.partner_id !== utility.id) continue; // a result for nothing we sent: reconciliation reports it
      let w = writers.get(utility.id);
      if (!w) {
        w = new OutboundWriter(ctx, utility, '24', 'billing.result', planOutbound(ctx, file, utility, '24'));
        writers.set(utility.id, w);
        answered[utility.id] = { planId: w.plan.id, refs: [] };
      }
      if (bill.answer_file_id && bill.answer_file_id !== w.plan.id) continue; // answered already by another 24
      const code = RESULT_CODES.has((f.resultCode ?? '').trim()) ? f.resultCode!.trim() : '90';
      w.put(w.set(w.blank(), {
        customerNo: bill.customer_no, billingMonth: bill.billing_month, billNo: bill.bill_no, amount: String(Math.abs(Number(f.amount))), resultCode: code,
        cardLast4: bill.card_last4, centreRef: ref,
      }), code === '00' ? Math.abs(Number(f.amount)) : 0);
      answered[utility.id]!.refs.push(ref);
    }
  };

  const format = formatOf(sender, '33');
  try {
    await readAsStandard(file.path!, format, 'sales.data', (fields) => {
      const u = byMerchant.get(fields.merchantNo!.trim());
      if (u && /^\d+$/.test(fields.centreRef ?? '')) pending.push({ fields, utility: u.partner });
    }, processChunk, skip);
    await processChunk();
  } catch (err) {
    for (const w of writers.values()) w.abandon();
    throw err;
  }
  const outputs: string[] = [];
  for (const [utilityId, w] of writers) {
    const a = answered[utilityId]!;
    for (let i = 0; i < a.refs.length; i += 900) {
      await db('utility_bills').whereIn('centre_ref', a.refs.slice(i, i + 900)).whereNull('answer_file_id').update({ answer_file_id: a.planId });
    }
    if (w.count === 0) { w.abandon(); continue; }
    outputs.push(await w.publish(ctx, file.id, `billing results for ${utilityId} from ${file.id}: ${w.count}`));
  }
  // the result codes, for the bills' own record
  return { outputs, results };
}
