// CSV from merchants (UTF-8 or Shift_JIS; a header row with the spec's field names) into a
// fixed-width 31, 41 or 61 file. Rows are checked with the same checks as fixed-width records and
// get the same error codes, with their CSV line numbers; good rows are written, bad rows are not.
import { CsvError, parse } from 'csv-parse';
import { maskCardNumbersIn, redactCardNumbers } from './card.ts';
import { fileAccess } from './file-access.ts';
import { codeTypeOf, FieldEncodeError } from './codepages/index.ts';
import { DuplicateIndex } from './duplicate-index.ts';
import { FormatError, type ErrorCode } from './errors.ts';
import { blankRecord, encodeField } from './field-codec.ts';
import { buildHeader, type HeaderFields } from './header.ts';
import { FamilyFileWriter } from './family-file-writer.ts';
import { familyForFileType, type Encoding, type FieldDef, type Framing } from './layouts.ts';
import { compileRecordChecks } from './record-checks.ts';
import { TotalsAccumulator } from './totals.ts';

export interface CsvImportOptions {
  out: string;
  header: Omit<Partial<HeaderFields>, 'fileType' | 'codeType'> & { senderCode: string; createdDate: string; createdTime: string };
  encoding?: Encoding;
  framing?: Framing;
  /** 'utf8' or 'sjis'; default: detected (a UTF-8 BOM or valid UTF-8, else Shift_JIS) */
  csvEncoding?: 'utf8' | 'sjis';
  routeCodes?: Set<string>;
  ownMerchantNos?: Set<string>;
}

export interface CsvRowError { line: number; code: ErrorCode; field: string; detail: string }

export interface CsvImportResult { path: string; rows: number; recordCount: number; errors: CsvRowError[]; rejectedLines: number[]; csvEncoding: 'utf8' | 'sjis' }

export const CSV_FILE_TYPES = ['31', '41', '61'];

async function detectCsvEncoding(path: string): Promise<'utf8' | 'sjis'> {
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  for await (const chunk of (await fileAccess().openRead(path)).createReadStream({ highWaterMark: 1 << 20 })) {
    try {
      utf8.decode(chunk as Buffer, { stream: true });
    } catch {
      return 'sjis';
    }
  }
  return 'utf8';
}

/** Decodes a byte stream strictly; a byte the code page does not define stops the import (E109). */
async function* decodeStream(path: string, enc: 'utf8' | 'sjis'): AsyncGenerator<string> {
  const decoder = new TextDecoder(enc === 'utf8' ? 'utf-8' : 'shift_jis', { fatal: true, ignoreBOM: false });
  try {
    for await (const chunk of (await fileAccess().openRead(path)).createReadStream({ highWaterMark: 1 << 20 })) yield decoder.decode(chunk as Buffer, { stream: true });
    yield decoder.decode();
  } catch (err) {
    if (err instanceof TypeError) throw new FormatError(`${path}: bytes not valid in ${enc}`, 'E109');
    throw err;
  }
}

/** csv-parse's message without the cell values it sometimes quotes (they may hold card numbers). */
function csvProblem(err: CsvError): string {
  const first = err.message.split(/, value is |: got /)[0]!;
  return maskCardNumbersIn(redactCardNumbers(first));
}

export async function importCsv(path: string, fileType: string, opts: CsvImportOptions): Promise<CsvImportResult> {
  if (!CSV_FILE_TYPES.includes(fileType)) throw new FormatError(`CSV import makes ${CSV_FILE_TYPES.join(', ')} files, not ${fileType}`, 'E107');
  const family = familyForFileType(fileType)!;
  const encoding = opts.encoding ?? family.encoding;
  const framing = opts.framing ?? family.framing;
  const csvEncoding = opts.csvEncoding ?? (await detectCsvEncoding(path));
  const result: CsvImportResult = { path: opts.out, rows: 0, recordCount: 0, errors: [], rejectedLines: [], csvEncoding };
  const check = compileRecordChecks(family.data, { encoding, routeCodes: opts.routeCodes, ownMerchantNos: opts.ownMerchantNos, today: 0 }, family.rules);
  const dup = family.rules.find((r) => r.rule === 'duplicate');
  const dupRanges = dup && 'fields' in dup ? dup.fields.map((n) => family.data.byName.get(n)!).map((f) => [f.offset, f.length] as const) : null;
  const dupIndex = new DuplicateIndex(dupRanges ?? []);
  const totals = new TotalsAccumulator(family);
  const writer = new FamilyFileWriter(opts.out, family, encoding, framing);
  const rec = blankRecord(family.data);

  try {
    writer.put(buildHeader({ ...opts.header, fileType, codeType: codeTypeOf(encoding) }, family.recordLength), family.header);
    const parser = parse({ columns: false, relax_column_count: false, skip_empty_lines: true, bom: true, info: true });
    // A decoding error ends the parser with it, so the loop below ends too (and nothing is left
    // unhandled); the parser's own errors end the loop directly.
    const feeding = (async () => {
      for await (const text of decodeStream(path, csvEncoding)) if (!parser.write(text)) await new Promise((r) => parser.once('drain', r));
      parser.end();
    })().catch((err: unknown) => {
      parser.destroy(err as Error);
    });
    let columns: (FieldDef | null)[] | null = null;
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      const line = info.lines;
      if (!columns) {
        columns = record.map((name) => {
          const f = family.data.byName.get(name.trim());
          if (!f && name.trim() !== '') throw new FormatError(`${path}: line ${line}: unknown column '${name}' (columns are the spec's field names of ${family.data.name})`, 'E101');
          return f && f.name !== 'filler' && f.name !== 'recordType' ? f : null;
        });
        continue;
      }
      result.rows++;
      const errs: CsvRowError[] = [];
      rec.fill(0x20);
      for (const f of family.data.fields) if (f.type !== 'C') encodeField(f.type === 'K' ? '' : '0', rec, 0, f);
      rec[0] = 0x32;
      const bad = new Set<number>();
      columns.forEach((f, i) => {
        if (!f) return;
        const value = (record[i] ?? '').trim();
        try {
          encodeField(value, rec, 0, f);
        } catch (err) {
          if (!(err instanceof FieldEncodeError)) throw err;
          bad.add(f.index);
          const code: ErrorCode = f.check === 'card' || f.check === 'cardOrBlank' ? 'E204' : f.type === 'C' || f.type === 'K' ? 'E210' : 'E201';
          errs.push({ line, code, field: f.name, detail: code === 'E204' ? 'card number does not fit 12-19 digits' : err.message.replace(/\d{12,}/g, '') });
          rec.fill(f.type === 'C' ? 0x20 : 0x30, f.offset, f.offset + f.length);
        }
      });
      check(rec, 0, -1, (f, code, detail) => { if (!f || !bad.has(f.index)) errs.push({ line, code, field: f?.name ?? '', detail }); });
      if (dupRanges && errs.length === 0) {
        const earlier = dupIndex.add(rec, 0, line);
        if (earlier) errs.push({ line, code: 'E303', field: '', detail: `same key as line ${earlier}` });
      }
      if (errs.length) { result.errors.push(...errs); result.rejectedLines.push(line); continue; }
      totals.add(rec, 0);
      writer.put(rec);
      result.recordCount++;
    }
    await feeding;
    const trailer = blankRecord(family.trailer);
    totals.writeInto(trailer);
    writer.finish(trailer);
  } catch (err) {
    writer.abandon();
    if (err instanceof CsvError) throw new FormatError(`${path}: line ${(err as CsvError & { lines?: number }).lines ?? '?'}: ${csvProblem(err)}`, 'E101');
    throw err;
  }
  return result;
}
