// What a reconciliation finds: one discrepancy per line of the report, with the keys to find the
// records it is about. Card numbers appear masked (first 6, last 4) or not at all.
export const CATEGORIES = [
  'missing result', // 1: sent in a 32, no 33 result after the card company's deadline
  'unexpected result', // 1: a 33 result for nothing we sent
  'amount mismatch', // 1: result amount differs from what was sent; 2: sale differs from the terminal's
  'never submitted', // 2: authorised at a terminal, never in a 31 (売上計上漏れ)
  'no terminal transaction', // 2: in a 31, no authorised terminal transaction
  'approval-number mismatch', // 2
  'duplicate', // 1: two results for one record; 2: one slip twice on the same side
  'file total mismatch', // 3: a trailer disagreed with its records (E105/E106), file rejected
  'bill without result', // 1: a utility's bill forwarded, no 24 line after the card company's deadline
] as const;
export type Category = (typeof CATEGORIES)[number];

export interface Discrepancy {
  category: Category;
  /** which reconciliation of the spec: 1 sent vs returned, 2 terminal vs sales, 3 file totals */
  check: 1 | 2 | 3;
  merchantNo?: string;
  terminalId?: string;
  slipNo?: string;
  date?: string;
  txnType?: string;
  cardCompanyCode?: string;
  centreRef?: string;
  /** the ledger file the record is in: 32 (sent), 81 (terminal) or the rejected file */
  fileId?: string;
  /** the 31 the sent record came from */
  sourceFileId?: string;
  resultFileId?: string;
  recordNo?: number;
  expected?: string;
  found?: string;
  maskedCardNo?: string;
  detail?: string;
}

export type Emit = (d: Discrepancy) => void;

export const REPORT_COLUMNS: [keyof Discrepancy, string][] = [
  ['category', 'category'], ['check', 'check'], ['merchantNo', 'merchant_no'], ['terminalId', 'terminal_id'], ['slipNo', 'slip_no'], ['date', 'date'],
  ['txnType', 'txn_type'], ['cardCompanyCode', 'card_company_code'], ['centreRef', 'centre_ref'], ['fileId', 'file_id'], ['sourceFileId', 'source_file_id'],
  ['resultFileId', 'result_file_id'], ['recordNo', 'record_no'], ['expected', 'expected'], ['found', 'found'], ['maskedCardNo', 'masked_card_no'], ['detail', 'detail'],
];
