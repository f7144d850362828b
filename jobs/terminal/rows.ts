// 81 records as ledger rows: one transaction row per record (reconciliation matches single slips)
// and per-file aggregates keyed like a 71 row (Jmanager and the 90-day query read only these).
import { decodeField, maskCardNumber, type Layout } from '../../formats/index.ts';

export const TXN_COLUMNS = ['file_id', 'record_no', 'merchant_no', 'store_code', 'terminal_id', 'txn_date', 'slip_no', 'card_company_code', 'txn_type', 'amount', 'approval_no', 'masked_card_no'] as const;
export const AGG_KEY_COLUMNS = ['merchant_no', 'store_code', 'terminal_id', 'business_date', 'card_company_code', 'payment_kind', 'payment_method'] as const;
export const AGG_SUM_COLUMNS = ['sale_count', 'sale_amount', 'void_count', 'void_amount', 'return_count', 'return_amount'] as const;
export const AGG_COLUMNS = ['file_id', ...AGG_KEY_COLUMNS, ...AGG_SUM_COLUMNS] as const;

export type TxnRow = (string | number)[];
export type AggRow = (string | number)[];

/** Reads the fields we keep from canonical 81 data records, without an object per record. */
export function terminalRecordReader(layout: Layout, fileId: string): (buf: Buffer, off: number, recordNo: number) => TxnRow & { kind: string; method: string } {
  const f = (name: string) => {
    const def = layout.byName.get(name);
    if (!def) throw new Error(`layout ${layout.name} has no field ${name}`);
    return def;
  };
  const fields = {
    merchantNo: f('merchantNo'), storeCode: f('storeCode'), terminalId: f('terminalId'), txnDate: f('txnDate'), slipNo: f('slipNo'),
    cardCompanyCode: f('cardCompanyCode'), paymentKind: f('paymentKind'), txnType: f('txnType'), paymentMethod: f('paymentMethod'),
    amount: f('amount'), approvalNo: f('approvalNo'), maskedCardNo: f('maskedCardNo'),
  };
  return (buf, off, recordNo) => {
    const d = (k: keyof typeof fields) => decodeField(buf, off, fields[k]);
    const row = [
      fileId, recordNo, d('merchantNo'), d('storeCode'), d('terminalId'), d('txnDate'), d('slipNo'), d('cardCompanyCode'), d('txnType'),
      Number(d('amount')), d('approvalNo'),
      // The online centre sends it masked; mask again so that a whole number can never land here.
      maskCardNumber(d('maskedCardNo')),
    ] as TxnRow & { kind: string; method: string };
    row.kind = d('paymentKind');
    row.method = d('paymentMethod');
    return row;
  };
}

/** Sums transactions into 71-shaped rows: store x terminal x date x company x kind x method. */
export class TerminalAggregator {
  private readonly sums = new Map<string, number[]>();

  add(row: TxnRow & { kind: string; method: string }): void {
    const key = `${row[2]}\t${row[3]}\t${row[4]}\t${row[5]}\t${row[7]}\t${row.kind}\t${row.method}`;
    let s = this.sums.get(key);
    if (!s) this.sums.set(key, (s = [0, 0, 0, 0, 0, 0]));
    const slot = row[8] === '10' ? 0 : row[8] === '20' ? 2 : 4; // sale, void, return
    s[slot]! += 1;
    s[slot + 1]! += row[9] as number;
  }

  get size(): number {
    return this.sums.size;
  }

  rows(fileId: string): AggRow[] {
    return [...this.sums].map(([key, s]) => [fileId, ...key.split('\t'), ...s]);
  }
}
