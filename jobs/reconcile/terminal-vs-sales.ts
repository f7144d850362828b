// Reconciliation 2, terminal vs sales, for one business date: every authorised transaction of the
// 81 journal (approval number set) should be in a 31 the merchant sent (we see accepted 31 records
// as sent_records), matched on merchantNo + terminalId + slipNo + date. Only merchant numbers the
// journal covers that day are checked for "no terminal transaction": a merchant whose terminals
// the online centre does not serve would otherwise flood the report.
import type { JobContext } from '../context.ts';
import type { Emit } from './discrepancy.ts';

interface TerminalSide { merchant_no: string; terminal_id: string; slip_no: string; txn_type: string; amount: number; approval_no: string; masked_card_no: string; file_id: string; record_no: number }
interface SalesSide { merchant_no: string; terminal_id: string; slip_no: string; txn_type: string; amount: number; approval_no: string; masked_card_no: string; file_id: string; source_file_id: string; centre_ref: string; card_company_code: string }

const authorised = (approval: string) => approval.trim() !== '' && !/^0+$/.test(approval.trim());
const keyOf = (r: { merchant_no: string; terminal_id: string; slip_no: string }) => `${r.merchant_no.trim()}\t${r.terminal_id.trim()}\t${r.slip_no}`;

/** Groups rows by key; more than one row under a key is a duplicate on that side. */
function byKey<T extends { merchant_no: string; terminal_id: string; slip_no: string }>(rows: T[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const r of rows) {
    const k = keyOf(r);
    const list = m.get(k);
    if (list) list.push(r);
    else m.set(k, [r]);
  }
  return m;
}

export async function checkTerminalVsSales(ctx: JobContext, date: string, emit: Emit): Promise<void> {
  const { db } = ctx.centre.ledger;
  const terminal = (await db('terminal_txns')
    .where('txn_date', date)
    .select('merchant_no', 'terminal_id', 'slip_no', 'txn_type', 'amount', 'approval_no', 'masked_card_no', 'file_id', 'record_no')) as TerminalSide[];
  const covered = new Set(terminal.map((t) => t.merchant_no.trim()));
  const sales = (await db('sent_records')
    .where('use_date', date)
    .select('merchant_no', 'terminal_id', 'slip_no', 'txn_type', 'amount', 'approval_no', 'masked_card_no', 'file_id', 'source_file_id', 'centre_ref', 'card_company_code')) as SalesSide[];
  const terminalByKey = byKey(terminal.filter((t) => authorised(t.approval_no)));
  const salesByKey = byKey(sales.filter((s) => covered.has(s.merchant_no.trim())));
  terminal.length = 0; // let the unfiltered rows go before the comparison allocates
  sales.length = 0;

  const termKeys = (t: TerminalSide) => ({ merchantNo: t.merchant_no.trim(), terminalId: t.terminal_id.trim(), slipNo: t.slip_no, date, txnType: t.txn_type, fileId: t.file_id, recordNo: Number(t.record_no), maskedCardNo: t.masked_card_no });
  const saleKeys = (s: SalesSide) => ({ merchantNo: s.merchant_no.trim(), terminalId: (s.terminal_id ?? '').trim(), slipNo: s.slip_no, date, txnType: s.txn_type, cardCompanyCode: s.card_company_code, centreRef: String(s.centre_ref), fileId: s.file_id, sourceFileId: s.source_file_id, maskedCardNo: s.masked_card_no });

  for (const [key, ts] of terminalByKey) {
    const t = ts[0]!;
    for (const extra of ts.slice(1)) emit({ check: 2, category: 'duplicate', ...termKeys(extra), expected: 'one terminal transaction', found: `${ts.length} in the 81 journal`, detail: `first: ${t.file_id} record ${t.record_no}` });
    const ss = salesByKey.get(key);
    if (!ss) {
      emit({ check: 2, category: 'never submitted', ...termKeys(t), expected: `a 31 sale of ${Number(t.amount)}`, found: 'none', detail: `approval ${t.approval_no.trim()}` });
      continue;
    }
    const s = ss[0]!;
    if (Number(s.amount) !== Number(t.amount) || s.txn_type !== t.txn_type)
      emit({ check: 2, category: 'amount mismatch', ...saleKeys(s), expected: `${t.txn_type} ${Number(t.amount)} (terminal)`, found: `${s.txn_type} ${Number(s.amount)} (31)`, detail: `terminal record ${t.file_id} #${t.record_no}` });
    if ((s.approval_no ?? '').trim() !== t.approval_no.trim())
      emit({ check: 2, category: 'approval-number mismatch', ...saleKeys(s), expected: t.approval_no.trim(), found: (s.approval_no ?? '').trim() || '(blank)', detail: `terminal record ${t.file_id} #${t.record_no}` });
  }
  for (const [key, ss] of salesByKey) {
    for (const extra of ss.slice(1)) emit({ check: 2, category: 'duplicate', ...saleKeys(extra), expected: 'one 31 record', found: `${ss.length} submitted`, detail: `first: centreRef ${ss[0]!.centre_ref}` });
    if (!terminalByKey.has(key)) {
      const s = ss[0]!;
      emit({ check: 2, category: 'no terminal transaction', ...saleKeys(s), expected: 'an authorised terminal transaction', found: 'none', detail: `31 amount ${Number(s.amount)}` });
    }
  }
}
