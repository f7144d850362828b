// The 91 rejection notice: one record per error found in a submitted file, for its sender.
import { maskCardNumbersIn } from './card.ts';
import { jstStamp } from './calendar.ts';
import { codeTypeOf } from './codepages/index.ts';
import { isStructural, type FormatErrorRecord } from './errors.ts';
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
}

/** Half-width text only, card numbers masked, cut to the field's bytes. */
export function noticeText(text: string, maxBytes: number): string {
  const masked = maskCardNumbersIn(text);
  let out = '';
  for (const ch of masked) {
    const c = ch.charCodeAt(0);
    if ((c >= 0x20 && c < 0x7f) || (c >= 0xff61 && c <= 0xff9f)) out += ch;
    if (out.length >= maxBytes) break;
  }
  return out.slice(0, maxBytes).trimEnd();
}

export async function writeRejectNotice(source: ValidationReport | FormatErrorRecord[], opts: RejectNoticeOptions, outPath: string): Promise<{ path: string; errorCount: number }> {
  const family = getFamily('reject');
  const encoding = opts.encoding ?? family.encoding;
  const framing = opts.framing ?? family.framing;
  const errors = Array.isArray(source) ? source : source.errors;
  const dataErrors = new Set(errors.filter((e) => !isStructural(e.code) && e.recordNo > 1).map((e) => e.recordNo));
  const fileRejected = Array.isArray(source) ? errors.some((e) => isStructural(e.code)) : source.fileRejected;
  const rejected = opts.rejectedRecords ?? (Array.isArray(source) ? dataErrors.size : source.rejectedCount);
  const accepted = opts.acceptedRecords ?? (Array.isArray(source) || fileRejected ? 0 : source.acceptedCount);
  const { date, time } = jstStamp(opts.createdAt);
  const writer = new FamilyFileWriter(outPath, family, encoding, framing);
  try {
    writer.put(buildHeader({ fileType: '91', codeType: codeTypeOf(encoding), senderCode: opts.centreCode, senderName: noticeText(opts.centreName ?? 'TSUNAGI CENTRE', 40), createdDate: date, createdTime: time, receiverCode: opts.receiverCode, fileSeq: String(opts.fileSeq) }, family.recordLength), family.header);
    const rec = blankRecord(family.data);
    const f = family.data.byName;
    for (const e of errors) {
      rec.fill(0x20);
      rec[0] = 0x32;
      encodeField(String(e.recordNo), rec, 0, f.get('recordNo')!);
      encodeField(String(e.bytePos), rec, 0, f.get('bytePos')!);
      encodeField(e.code, rec, 0, f.get('errorCode')!);
      encodeField(noticeText(e.field, 24), rec, 0, f.get('fieldName')!);
      encodeField(noticeText(e.detail, 60), rec, 0, f.get('detail')!);
      writer.put(rec);
    }
    const trailer = blankRecord(family.trailer);
    const t = family.trailer.byName;
    encodeField(String(errors.length), trailer, 0, t.get('errorCount')!);
    encodeField(String(rejected), trailer, 0, t.get('rejectedRecords')!);
    encodeField(String(accepted), trailer, 0, t.get('acceptedRecords')!);
    encodeField(opts.fileSha256.toLowerCase(), trailer, 0, t.get('fileSha256')!);
    writer.finish(trailer);
  } catch (err) {
    writer.abandon();
    throw err;
  }
  return { path: outPath, errorCount: errors.length };
}
