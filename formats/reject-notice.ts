// The 91 rejection notice: one record per error found in a submitted file, for its sender.
import { errorDetail, noticeText, omittedDetail, type ResendAdvice } from './notice-text.ts';
import { jstStamp } from './calendar.ts';
import { codeTypeOf } from './codepages/index.ts';
import { isStructural, type ErrorCode, type FormatErrorRecord } from './errors.ts';
import { blankRecord, encodeField } from './field-codec.ts';
import { buildHeader } from './header.ts';
import { FamilyFileWriter } from './family-file-writer.ts';
import { getFamily, type Encoding, type Framing } from './layouts.ts';
import type { ValidationReport } from './validate.ts';

export interface RejectNoticeOptions {
  centreCode: string;
  centreName?: string;
  receiverCode: string;
  fileSha256: string;
  createdAt: Date;
  fileSeq: string | number;
  encoding?: Encoding;
  framing?: Framing;
  /** override the counts when only errors are given */
  rejectedRecords?: number;
  acceptedRecords?: number;
  /** Errors listed at most (default all); the rest are summed up in one closing record. */
  maxErrors?: number;
}

export { noticeText };

export async function writeRejectNotice(source: ValidationReport | FormatErrorRecord[], opts: RejectNoticeOptions, outPath: string): Promise<{ path: string; errorCount: number; records: number }> {
  const family = getFamily('reject');
  const encoding = opts.encoding ?? family.encoding;
  const framing = opts.framing ?? family.framing;
  const report = Array.isArray(source) ? null : source;
  const errors = report ? report.errors : (source as FormatErrorRecord[]);
  const dataErrors = new Set(errors.filter((e) => !isStructural(e.code) && e.recordNo > 1).map((e) => e.recordNo));
  const fileRejected = report ? report.fileRejected : errors.some((e) => isStructural(e.code));
  // The counts are the submitted file's: a file rejected whole has all its data records rejected.
  const rejected = opts.rejectedRecords ?? (report ? (fileRejected ? report.recordCount : report.rejectedCount) : dataErrors.size);
  const accepted = opts.acceptedRecords ?? (report && !fileRejected ? report.acceptedCount : 0);
  const total = Math.max(report?.errorCount ?? errors.length, errors.length);
  const listed = errors.slice(0, opts.maxErrors ?? errors.length);
  const omitted = new Map<ErrorCode, number>(Object.entries(report?.omittedByCode ?? {}) as [ErrorCode, number][]);
  for (const e of errors.slice(listed.length)) omitted.set(e.code, (omitted.get(e.code) ?? 0) + 1);
  const { date, time } = jstStamp(opts.createdAt);
  const writer = new FamilyFileWriter(outPath, family, encoding, framing);
  try {
    writer.put(buildHeader({ fileType: '91', codeType: codeTypeOf(encoding), senderCode: opts.centreCode, senderName: noticeText(opts.centreName ?? 'TSUNAGI CENTRE', 40), createdDate: date, createdTime: time, receiverCode: opts.receiverCode, fileSeq: String(opts.fileSeq) }, family.recordLength), family.header);
    const rec = blankRecord(family.data);
    const f = family.data.byName;
    const line = (recordNo: number, bytePos: number, code: ErrorCode, field: string, detail: string) => {
      rec.fill(0x20);
      rec[0] = 0x32;
      encodeField(String(recordNo), rec, 0, f.get('recordNo')!);
      encodeField(String(bytePos), rec, 0, f.get('bytePos')!);
      encodeField(code, rec, 0, f.get('errorCode')!);
      encodeField(noticeText(field, 24), rec, 0, f.get('fieldName')!);
      encodeField(detail, rec, 0, f.get('detail')!);
      writer.put(rec);
    };
    const width = f.get('detail')!.length;
    const advice: ResendAdvice = errors.some((e) => e.code === 'E108') ? 'duplicate' : fileRejected ? 'whole-file' : 'record';
    for (const e of listed) line(e.recordNo, e.bytePos, e.code, e.field, errorDetail(e.code, encoding, width, isStructural(e.code) && advice === 'record' ? undefined : advice, e.detail));
    // Errors beyond the cap: one closing line, on the first of them, with how many more there were.
    const omittedCount = total - listed.length;
    if (omittedCount > 0) {
      const firstOmitted = errors[listed.length] ?? report?.firstOmitted;
      const [topCode] = [...omitted].sort((a, b) => b[1] - a[1])[0] ?? [firstOmitted?.code ?? 'E101'];
      line(firstOmitted?.recordNo ?? 1, 0, topCode, '', omittedDetail(topCode, omittedCount, total, encoding, width));
    }
    const records = listed.length + (omittedCount > 0 ? 1 : 0);
    const trailer = blankRecord(family.trailer);
    const t = family.trailer.byName;
    encodeField(String(records), trailer, 0, t.get('errorCount')!);
    encodeField(String(rejected), trailer, 0, t.get('rejectedRecords')!);
    encodeField(String(accepted), trailer, 0, t.get('acceptedRecords')!);
    encodeField(opts.fileSha256.toLowerCase(), trailer, 0, t.get('fileSha256')!);
    writer.finish(trailer);
  } catch (err) {
    writer.abandon();
    throw err;
  }
  return { path: outPath, errorCount: total, records: Math.min(total, listed.length + 1) };
}
