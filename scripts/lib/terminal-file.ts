// Writing 81 terminal-transaction files from given records (demo, tests, benchmark), and reading a
// 31 file's records, so that a journal can mirror a merchant's sales with planted differences.
import { blankRecord, buildEnd, buildHeader, encodeField, familyForFileType, maskCardNumber, openSource, RecordFileWriter, snapshotFields, streamCanonical, TotalsAccumulator } from '../../formats/index.ts';

export interface TerminalRecord {
  merchantNo: string;
  storeCode: string;
  terminalId: string;
  txnDate: string;
  txnTime?: string;
  slipNo: string;
  cardCompanyCode: string;
  paymentKind?: string;
  txnType: string;
  paymentMethod?: string;
  installments?: string;
  amount: number;
  approvalNo: string;
  /** a whole number is masked before it is written */
  cardNo?: string;
  entryMode?: string;
}

export interface TerminalFileOptions {
  senderCode?: string;
  receiverCode?: string;
  createdDate: string;
  fileSeq?: number;
}

/** Writes an 81 file (sjis, crlf) with a correct trailer; returns the number of data records. */
export function writeTerminalFile(records: Iterable<TerminalRecord>, opts: TerminalFileOptions, outPath: string): number {
  const family = familyForFileType('81')!;
  const data = family.data;
  const writer = new RecordFileWriter(outPath, family.framing);
  const totals = new TotalsAccumulator(family);
  const rec = blankRecord(data);
  const fields = data.fields.filter((f) => f.name !== 'filler' && f.name !== 'recordType');
  let n = 0;
  try {
    writer.write(buildHeader({ fileType: '81', codeType: '0', senderCode: opts.senderCode ?? '9000000001', senderName: 'ONLINE CENTRE', createdDate: opts.createdDate, createdTime: '235900', receiverCode: opts.receiverCode ?? '0000000001', periodFrom: opts.createdDate, periodTo: opts.createdDate, fileSeq: String(opts.fileSeq ?? 1) }, family.recordLength));
    for (const r of records) {
      rec.fill(0x20);
      rec[0] = 0x32;
      const values: Record<string, string> = {
        merchantNo: r.merchantNo, storeCode: r.storeCode, terminalId: r.terminalId, txnDate: r.txnDate, txnTime: r.txnTime ?? '120000', slipNo: r.slipNo,
        cardCompanyCode: r.cardCompanyCode, paymentKind: r.paymentKind ?? '1', txnType: r.txnType, paymentMethod: r.paymentMethod ?? '10', installments: r.installments ?? '00',
        amount: String(r.amount), approvalNo: r.approvalNo, maskedCardNo: r.cardNo ? maskCardNumber(r.cardNo) : '', entryMode: r.entryMode ?? 'IC',
      };
      for (const f of fields) encodeField(values[f.name] ?? '', rec, 0, f);
      totals.add(rec, 0);
      writer.write(rec);
      n++;
    }
    const trailer = blankRecord(family.trailer);
    totals.writeInto(trailer);
    writer.write(trailer);
    writer.write(buildEnd(family.recordLength));
    writer.close();
  } catch (err) {
    writer.abandon();
    throw err;
  }
  return n;
}

/** The data records of a sales (31) file as field maps. */
export async function readSalesRecords(path: string): Promise<Record<string, string>[]> {
  const src = await openSource(path, {});
  const out: Record<string, string>[] = [];
  await streamCanonical(src, (rec, off, _no, type) => {
    if (type === '2') out.push(snapshotFields(src.family.data, rec, off));
  });
  return out;
}

/** The terminal transaction a 31 sales record came from. */
export function terminalRecordOf(s: Record<string, string>): TerminalRecord {
  return {
    merchantNo: s.merchantNo!, storeCode: s.storeCode!, terminalId: s.terminalId!, txnDate: s.useDate!, txnTime: s.useTime, slipNo: s.slipNo!,
    cardCompanyCode: s.cardCompanyCode!, txnType: s.txnType!, paymentMethod: s.paymentMethod, installments: s.installments, amount: Number(s.amount),
    approvalNo: s.approvalNo!, cardNo: s.cardNo, entryMode: s.entryMode === 'IC' || s.entryMode === 'CL' ? s.entryMode : 'IC',
  };
}
