// Writing one 71 Jmanager file: header (period and cycle), per-terminal rows, a store-total row
// (terminalId spaces) after each store x date x card company x payment kind x method, trailer
// totals as the layout family declares them, end record; in the partner's layout and code page.
import { blankRecord, buildHeader, codeTypeOf, encodeField, familyOfLayoutName, FamilyFileWriter, TotalsAccumulator, type Encoding, type Framing } from '../../formats/index.ts';
// Not exported by formats/index.ts yet: the one call that turns a canonical record into a code page.
import type { AggregateRow } from './aggregates.ts';
import type { Period } from './periods.ts';

export interface JmanagerFileOptions {
  period: Period;
  layout?: string;
  encoding?: Encoding;
  framing?: Framing;
  senderCode: string;
  senderName: string;
  receiverCode: string;
  createdDate: string;
  createdTime: string;
  fileSeq: string;
}

export interface JmanagerFileResult {
  dataRows: number;
  terminalRows: number;
  totals: Record<string, number | string>;
  /** sales - voids - returns over the terminal rows */
  netAmount: number;
}

type Sums = [number, number, number, number, number, number];

const groupKey = (r: AggregateRow) => `${r.store_code}\t${r.merchant_no}\t${r.business_date}\t${r.card_company_code}\t${r.payment_kind}\t${r.payment_method}`;

export async function writeJmanagerFile(rows: Iterable<AggregateRow>, opts: JmanagerFileOptions, outPath: string): Promise<JmanagerFileResult> {
  const family = familyOfLayoutName(opts.layout ?? 'jmanager');
  const encoding = opts.encoding ?? family.encoding;
  const framing = opts.framing ?? family.framing;
  const data = family.data;
  const totals = new TotalsAccumulator(family);
  const canon = blankRecord(data);
  const writer = new FamilyFileWriter(outPath, family, encoding, framing);
  // One value getter per field of the layout, in its order (fields it does not name stay blank).
  type Get = (r: AggregateRow, terminalId: string, s: Sums, net: number) => string;
  const getters: Record<string, Get> = {
    recordType: () => '2', storeCode: (r) => r.store_code, merchantNo: (r) => r.merchant_no, terminalId: (_r, t) => t, businessDate: (r) => r.business_date,
    cardCompanyCode: (r) => r.card_company_code, paymentKind: (r) => r.payment_kind, paymentMethod: (r) => r.payment_method, saleCount: (_r, _t, s) => String(s[0]),
    saleAmount: (_r, _t, s) => String(s[1]), voidCount: (_r, _t, s) => String(s[2]), voidAmount: (_r, _t, s) => String(s[3]), returnCount: (_r, _t, s) => String(s[4]),
    returnAmount: (_r, _t, s) => String(s[5]), netSign: (_r, _t, _s, net) => (net < 0 ? '-' : '+'), netAmount: (_r, _t, _s, net) => String(Math.abs(net)),
  };
  const plan = data.fields.map((f) => [f, Object.hasOwn(getters, f.name) ? getters[f.name]! : () => ''] as const);
  const writeRow = (r: AggregateRow, terminalId: string, s: Sums) => {
    canon.fill(0x20);
    const net = s[1] - s[3] - s[5];
    for (const [f, get] of plan) encodeField(get(r, terminalId, s, net), canon, 0, f);
    totals.add(canon, 0);
    writer.put(canon);
  };
  const result: JmanagerFileResult = { dataRows: 0, terminalRows: 0, totals: {}, netAmount: 0 };
  try {
    writer.put(buildHeader({
      fileType: '71', codeType: codeTypeOf(encoding), senderCode: opts.senderCode, senderName: opts.senderName, createdDate: opts.createdDate,
      createdTime: opts.createdTime, receiverCode: opts.receiverCode, periodFrom: opts.period.from, periodTo: opts.period.to, fileSeq: opts.fileSeq, cycle: opts.period.cycle,
    }, family.recordLength), family.header);
    let group = null as { key: string; first: AggregateRow; sums: Sums } | null;
    const closeGroup = () => {
      if (!group) return;
      writeRow(group.first, '', group.sums);
      result.dataRows++;
    };
    for (const r of rows) {
      const key = groupKey(r);
      if (group?.key !== key) {
        closeGroup();
        group = { key, first: r, sums: [0, 0, 0, 0, 0, 0] };
      }
      const s: Sums = [r.sale_count, r.sale_amount, r.void_count, r.void_amount, r.return_count, r.return_amount];
      for (let i = 0; i < 6; i++) group.sums[i]! += s[i]!;
      writeRow(r, r.terminal_id, s);
      result.dataRows++;
      result.terminalRows++;
      result.netAmount += s[1] - s[3] - s[5];
    }
    closeGroup();
    const trailer = blankRecord(family.trailer);
    totals.writeInto(trailer);
    writer.finish(trailer);
  } catch (err) {
    writer.abandon();
    throw err;
  }
  result.totals = totals.values();
  return result;
}
