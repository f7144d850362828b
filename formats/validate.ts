// Validation of a whole file, streaming: structure (E1xx), fields and records (E2xx, E3xx),
// trailer totals, and the partner's policy (reject the file, or only the bad records).
import { fileAccess } from './file-access.ts';
import { ebcdicToCanonical, isEbcdic, recordTypeOf } from './codepages/index.ts';
import { DuplicateIndex } from './duplicate-index.ts';
import { FormatError, isStructural, makeError, type ErrorCode, type FormatErrorRecord } from './errors.ts';
import { sniffHeader, readHeaderFields, type HeaderInfo } from './header.ts';
import { familyOfLayoutName, type Encoding, type Family, type FieldDef, type Framing, type Layout } from './layouts.ts';
import { compileRecordChecker, compileRecordChecks, type CheckContext } from './record-checks.ts';
import { readRecords } from './record-io.ts';
import { TotalsAccumulator } from './totals.ts';

export interface ValidateOptions {
  /** Layout family ('sales', 'sales.company120', ...) or a data layout name; default from the header. */
  layout?: string;
  encoding?: Encoding;
  framing?: Framing;
  /** 'file': any error rejects the file; 'record': field and business errors reject the record only. */
  policy: 'file' | 'record';
  /** fileTypes this partner may send here (E107). */
  allowedFileTypes?: string[];
  /** card company / issuer codes that have a route (E301); unchecked when undefined. */
  routeCodes?: Set<string>;
  /** merchant numbers that belong to the sender (E302); unchecked when undefined. */
  ownMerchantNos?: Set<string>;
  /** YYYYMMDD; when set, use dates after it are E202. */
  today?: string;
  /** Errors kept in the report (all are counted). Default 100000. */
  maxErrors?: number;
}

export interface ValidationReport {
  path: string;
  header: HeaderInfo | null;
  family: string | null;
  encoding: Encoding | null;
  framing: Framing | null;
  recordLength: number | null;
  errors: FormatErrorRecord[];
  /** every error found, also those beyond maxErrors */
  errorCount: number;
  /** errors found beyond maxErrors, by code, and the first of them */
  omittedByCode?: Partial<Record<ErrorCode, number>>;
  firstOmitted?: FormatErrorRecord;
  /** data records */
  recordCount: number;
  acceptedCount: number;
  rejectedCount: number;
  fileRejected: boolean;
  /** data records with errors of their own, ascending */
  rejectedRecordNos: number[];
  /** totals of every data record, by trailer field */
  totals: Record<string, number | string>;
  /** totals of the accepted data records (what goes on) */
  acceptedTotals: Record<string, number | string>;
  /** header + data + trailer groups */
  groups: number;
  bytes: number;
}

const SNIFF_BYTES = 4096;

async function readFirstBytes(path: string): Promise<Buffer> {
  const fh = await fileAccess().openRead(path);
  try {
    const buf = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await fh.read(buf, 0, SNIFF_BYTES, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

const fileSize = (path: string) => fileAccess().plainSize(path);

type State = 'start' | 'group' | 'afterTrailer' | 'ended';

export async function validateFile(path: string, opts: ValidateOptions): Promise<ValidationReport> {
  const maxErrors = opts.maxErrors ?? 100_000;
  const report: ValidationReport = {
    path, header: null, family: null, encoding: null, framing: null, recordLength: null, errors: [], errorCount: 0,
    recordCount: 0, acceptedCount: 0, rejectedCount: 0, fileRejected: false, rejectedRecordNos: [], totals: {}, acceptedTotals: {}, groups: 0, bytes: 0,
  };
  let structural = false;
  const push = (e: FormatErrorRecord) => {
    report.errorCount++;
    if (report.errors.length < maxErrors) report.errors.push(e);
    else {
      report.firstOmitted ??= e;
      (report.omittedByCode ??= {})[e.code] = (report.omittedByCode[e.code] ?? 0) + 1;
    }
    if (isStructural(e.code)) structural = true;
  };

  const first = await readFirstBytes(path);
  let header: HeaderInfo;
  try {
    header = sniffHeader(first, opts.encoding);
  } catch (err) {
    if (!(err instanceof FormatError)) throw err;
    push(makeError(1, 0, err.code, '', err.message));
    return finish(report, true, opts.policy);
  }
  report.header = header;
  let family: Family;
  try {
    family = opts.layout ? familyOfLayoutName(opts.layout) : familyFor(header);
  } catch (err) {
    push(makeError(1, 2, 'E107', 'fileType', (err as Error).message));
    return finish(report, true, opts.policy);
  }
  const encoding = opts.encoding ?? header.encoding;
  const framing = opts.framing ?? header.framing;
  Object.assign(report, { family: family.name, encoding, framing, recordLength: family.recordLength });
  if (header.recordLengthSeen && header.recordLength !== family.recordLength) {
    push(makeError(1, 0, 'E101', '', `records are ${header.recordLength} bytes but layout ${family.name} has ${family.recordLength}`));
    return finish(report, true, opts.policy);
  }

  const ctx: CheckContext = {
    encoding, allowedFileTypes: opts.allowedFileTypes ?? family.fileTypes, routeCodes: opts.routeCodes,
    ownMerchantNos: opts.ownMerchantNos, today: opts.today ? Number(opts.today) : 0,
  };
  const checkHeader = compileRecordChecks(family.header, ctx);
  const dataChecker = compileRecordChecker(family.data, ctx, family.rules);
  const checkData = dataChecker.check;
  const dataPasses = dataChecker.passes;
  const checkTrailer = compileRecordChecks(family.trailer, ctx);
  const checkEnd = compileRecordChecks(family.end, ctx);
  const layoutByType: Record<string, Layout> = { '1': family.header, '2': family.data, '8': family.trailer, '9': family.end };
  const duplicateRule = family.rules.find((r) => r.rule === 'duplicate');
  const dupRanges = duplicateRule && 'fields' in duplicateRule ? duplicateRule.fields.map((n) => family.data.byName.get(n)!).map((f) => [f.offset, f.length] as const) : null;
  const dupIndex = dupRanges ? new DuplicateIndex(dupRanges, Math.ceil(first.length ? (await fileSize(path)) / family.recordLength : 0)) : null;
  const groupTotals = new TotalsAccumulator(family);
  const allTotals = new TotalsAccumulator(family);
  const acceptedTotals = new TotalsAccumulator(family);
  const rejectedTotals = new TotalsAccumulator(family);
  const ebcdic = isEbcdic(encoding);
  const scratch = Buffer.alloc(family.recordLength);
  const L = family.recordLength;

  let state = 'start' as State;
  let recordNo = 0;
  let recordHadError = false;
  let currentIsData = false;
  const rejected: number[] = [];
  let lastRecord = 0;

  const report1 = (field: FieldDef | null, code: ErrorCode, detail: string) => {
    push(makeError(recordNo, field ? field.offset + 1 : 0, code, field ? field.name : '', detail));
    if (!recordHadError) {
      recordHadError = true;
      if (currentIsData) rejected.push(recordNo);
      else structural = true; // header, trailer, end: cannot be rejected alone
    }
  };

  const dataByte = ebcdic ? -1 : 0x32;
  const onRecord = (raw: Buffer, rawOff: number, no: number) => {
    recordNo = no;
    lastRecord = no;
    recordHadError = false;
    if (raw[rawOff] === dataByte) {
      // the common case, a data record of an ASCII-family file: what the general path below does for type '2'
      currentIsData = true;
      if (state !== 'group') report1(null, 'E103', state === 'start' ? 'data record before the header' : 'data record after the trailer');
      report.recordCount++;
      if (!dataPasses(raw, rawOff)) checkData(raw, rawOff, -1, report1);
      if (dupIndex) {
        const earlier = dupIndex.add(raw, rawOff, recordNo);
        if (earlier) report1(null, 'E303', `same ${(duplicateRule as { fields: string[] }).fields.join(', ')} as record ${earlier}`);
      }
      groupTotals.add(raw, rawOff);
      if (recordHadError) rejectedTotals.add(raw, rawOff);
      return;
    }
    const type = recordTypeOf(encoding, raw[rawOff]!);
    currentIsData = type === '2';
    let buf = raw;
    let off = rawOff;
    let skipField = -1;
    const layout = layoutByType[type];
    if (ebcdic) {
      const badAt = ebcdicToCanonical(encoding, layout ?? null, raw, rawOff, scratch, L);
      buf = scratch;
      off = 0;
      if (badAt >= 0) {
        const f = layout ? layout.fields.find((x) => badAt >= x.offset && badAt < x.offset + x.length)! : null;
        report1(f, 'E109', `byte 0x${raw[rawOff + badAt]!.toString(16)} at byte ${badAt + 1} is not valid in ${encoding}`);
        if (f) skipField = f.index;
      }
    }
    if (!layout) {
      report1(layoutByType['2']!.fields[0]!, 'E102', `unknown recordType '${String.fromCharCode(buf[off]!).replace(/[^\x20-\x7e]/, '?')}'`);
      return;
    }
    // order: header, data*, trailer, (header, data*, trailer)*, end
    switch (type) {
      case '1':
        if (state === 'group') report1(null, 'E104', 'header before the trailer of the previous group');
        else if (state === 'ended') report1(null, 'E103', 'header after the end record');
        state = 'group';
        report.groups++;
        allTotals.merge(groupTotals);
        groupTotals.reset();
        break;
      case '2':
        if (state !== 'group') report1(null, 'E103', state === 'start' ? 'data record before the header' : 'data record after the trailer');
        report.recordCount++;
        break;
      case '8':
        if (state !== 'group') report1(null, 'E103', 'trailer outside a header/data group');
        break;
      case '9':
        if (state === 'group') report1(null, 'E104', 'end record without a trailer');
        else if (state !== 'afterTrailer') report1(null, 'E103', 'end record out of place');
        state = 'ended';
        break;
    }
    (type === '2' ? checkData : type === '1' ? checkHeader : type === '8' ? checkTrailer : checkEnd)(buf, off, skipField, report1);
    if (type === '8' && state === 'group') {
      for (const m of groupTotals.compare(buf, off)) {
        // a count that is not digits is already E201
        if (m.found !== 'not a number') report1(family.trailer.byName.get(m.field)!, m.code, `trailer says ${m.found}, counted ${m.expected}`);
      }
      state = 'afterTrailer';
    }
    if (type === '1' && !recordHadError) {
      const codeType = String.fromCharCode(buf[off + 3]!);
      if (codeType !== (ebcdic ? '1' : '0')) report1(family.header.byName.get('codeType')!, 'E206', `codeType ${codeType} but the file is ${encoding}`);
    }
    if (type === '2') {
      if (dupIndex) {
        const earlier = dupIndex.add(buf, off, recordNo);
        if (earlier) report1(null, 'E303', `same ${(duplicateRule as { fields: string[] }).fields.join(', ')} as record ${earlier}`);
      }
      // one add per record; the few rejected ones are kept apart and subtracted at the end
      groupTotals.add(buf, off);
      if (recordHadError) rejectedTotals.add(buf, off);
    }
  };

  const result = await readRecords(path, { recordLength: L, framing }, onRecord);
  report.bytes = result.bytes;
  if (result.gridBreak) {
    push(makeError(result.gridBreak.recordNo, 0, 'E101', '', result.gridBreak.detail));
  } else if (state !== 'ended') {
    push(makeError(lastRecord + 1, 0, 'E104', '', state === 'afterTrailer' ? 'missing end record' : state === 'group' ? 'missing trailer and end record' : 'no records'));
  }
  report.rejectedRecordNos = rejected;
  allTotals.merge(groupTotals);
  acceptedTotals.merge(allTotals);
  acceptedTotals.merge(rejectedTotals, -1);
  report.totals = allTotals.values();
  report.acceptedTotals = acceptedTotals.values();
  return finish(report, structural, opts.policy);
}

function familyFor(header: HeaderInfo): Family {
  if (!header.family) throw new FormatError(`no layout for fileType ${header.fileType} with ${header.recordLength}-byte records`, 'E107');
  return familyOfLayoutName(header.family);
}

function finish(report: ValidationReport, structural: boolean, policy: 'file' | 'record'): ValidationReport {
  // A file none of whose records could be accepted is rejected as a whole, whatever the policy:
  // nothing of it goes on, and it must not hold its fileSeq against the corrected resend (E108).
  const noneAccepted = report.recordCount > 0 && report.rejectedRecordNos.length >= report.recordCount;
  report.fileRejected = structural || noneAccepted || (policy === 'file' && report.errorCount > 0);
  report.rejectedCount = report.fileRejected ? report.recordCount : report.rejectedRecordNos.length;
  report.acceptedCount = report.recordCount - report.rejectedCount;
  if (report.fileRejected) {
    for (const k of Object.keys(report.acceptedTotals)) report.acceptedTotals[k] = typeof report.acceptedTotals[k] === 'string' ? '+' : 0;
  }
  return report;
}

export { readHeaderFields };
