// Conversion and routing: one input file becomes one output file per destination, each in its
// destination's layout, code page and framing, with its own header and a recomputed trailer.
// The same function serves 31->32 (by card company), 41 and 61, results back to merchants
// (33, 42) and the fan-out of invalid-card lists (51, 52).
import { unlinkSync } from 'node:fs';
import { canonicalToEncoding, codeTypeOf, FieldEncodeError } from './codepages/index.ts';
import { FormatError } from './errors.ts';
import { blankRecord, encodeField } from './field-codec.ts';
import { buildEnd, buildHeader, type HeaderFields } from './header.ts';
import { familyOfLayoutName, type Encoding, type Family, type Framing, type Layout } from './layouts.ts';
import { getMapping, type CompiledMapping } from './mapping.ts';
import { makeRecordView, type RecordFields } from './record-view.ts';
import { RecordFileWriter } from './record-io.ts';
import { openSource, streamCanonical } from './source-file.ts';
import { TotalsAccumulator } from './totals.ts';

export interface TargetFormat {
  /** data layout ('sales.data', 'sales.company120') or family name */
  layout: string;
  encoding?: Encoding;
  framing?: Framing;
  /** fileType written in the output header, e.g. '32' */
  fileType: string;
}

type PerDestination<T> = T | Record<string, T> | ((destinationId: string) => T);

export interface SplitHeader {
  senderCode: string;
  senderName?: string;
  createdDate: string;
  createdTime: string;
  receiverCode: PerDestination<string>;
  fileSeq: PerDestination<string | number>;
  /** default: the input header's */
  periodFrom?: string;
  periodTo?: string;
  cycle?: string;
}

export interface ForwardInfo {
  recordNo: number;
  /** the centreRef stamped on this record, when stamping */
  centreRef?: string;
  /** the input record's fields (valid during the call only) */
  source: RecordFields;
  /** the input record itself, canonical bytes at `sourceOffset` of its layout (valid during the call only) */
  sourceRecord: Buffer;
  sourceOffset: number;
  sourceLayout: Layout;
}

export interface SplitOptions {
  sourceLayout?: string;
  encoding?: Encoding;
  framing?: Framing;
  /** records rejected by validation: left out */
  skipRecordNos?: Iterable<number>;
  /** destination(s) of a data record, or null to drop it. `fields` is valid during the call only. */
  routeOf(fields: RecordFields): string | string[] | null;
  targetFormat(destinationId: string): TargetFormat;
  header: SplitHeader;
  /** each forwarded record gets centreRef start+i (i = 0, 1, ... in output order) and centreDate */
  stampCentreRef?: { start: bigint; centreDate: string };
  outputPath(destinationId: string): string;
  /**
   * false: close the outputs without fsync, because the caller publishes them with an fsync of
   * its own (spool's publishFile, off this thread); default true.
   */
  syncOutputs?: boolean;
  /**
   * After each record is written: the output record's fields and where it came from. `fields` is
   * decoded on access and valid during the call only (copy what you keep).
   */
  onForward?(destinationId: string, fields: RecordFields, info: ForwardInfo): void;
  /** records no route was found for */
  onUnrouted?(recordNo: number, fields: RecordFields): void;
}

export interface SplitOutput {
  destinationId: string;
  path: string;
  recordCount: number;
  totals: Record<string, number | string>;
  fileType: string;
  layout: string;
  encoding: Encoding;
  framing: Framing;
  /** centreRef range stamped in this file, when stamping */
  firstCentreRef?: bigint;
  lastCentreRef?: bigint;
}

interface Output {
  info: SplitOutput;
  family: Family;
  encoding: Encoding;
  mapping: CompiledMapping;
  writer: RecordFileWriter;
  totals: TotalsAccumulator;
  canon: Buffer;
  encoded: Buffer;
  centreRefField?: ReturnType<Family['data']['byName']['get']>;
  centreDateField?: ReturnType<Family['data']['byName']['get']>;
  /** last centreRef stamped, as a number while refs are safe integers (set into info at the end) */
  lastRef: number;
  /** the written record's fields for onForward, decoded only if read */
  view: ReturnType<typeof makeRecordView>;
}

/** Writes a non-negative bigint as zero-padded digits; refuses one that does not fit. */
function writeDigits(value: bigint, dst: Buffer, s: number, len: number): void {
  let v = value;
  for (let i = s + len - 1; i >= s; i--) {
    dst[i] = 0x30 + Number(v % 10n);
    v /= 10n;
  }
  if (v !== 0n || value < 0n) throw new FormatError(`centreRef ${value} does not fit ${len} digits`, 'E201');
}

/** ASCII digits of 0000-9999, four bytes each. */
const DIGITS4 = new Uint8Array(40000);
for (let n = 0; n < 10000; n++) for (let i = 0, v = n; i < 4; i++, v = (v / 10) | 0) DIGITS4[n * 4 + 3 - i] = 0x30 + (v % 10);
const POW10 = Array.from({ length: 16 }, (_, n) => 10 ** n);
const digitScratch = new Uint8Array(16);

/** writeDigits for a non-negative safe integer, without bigint arithmetic: four digits at a time. */
function writeDigitsNumber(value: number, dst: Buffer, s: number, len: number): void {
  if (len > 15 || value >= POW10[len]!) { writeDigits(BigInt(value), dst, s, len); return; }
  const hi = Math.floor(value / 1e8);
  const lo = value - hi * 1e8;
  const lo0 = lo % 10000, lo1 = (lo - lo0) / 10000, hi0 = hi % 10000, hi1 = (hi - hi0) / 10000;
  const d = digitScratch;
  for (let i = 0; i < 4; i++) {
    d[i] = DIGITS4[hi1 * 4 + i]!;
    d[4 + i] = DIGITS4[hi0 * 4 + i]!;
    d[8 + i] = DIGITS4[lo1 * 4 + i]!;
    d[12 + i] = DIGITS4[lo0 * 4 + i]!;
  }
  for (let i = 0; i < len; i++) dst[s + i] = d[16 - len + i]!;
}

/**
 * writeDigitsNumber for the centreRefs, which go up by one from record to record: the digits of the
 * last value are kept and counted up in place (no division per record).
 */
class RefDigits {
  private last = -2;
  private readonly digits = new Uint8Array(16);

  write(value: number, dst: Buffer, s: number, len: number): void {
    if (len > 15 || value >= POW10[len]!) { writeDigits(BigInt(value), dst, s, len); return; }
    const d = this.digits;
    if (value === this.last + 1) {
      let i = 15;
      while (d[i] === 0x39) d[i--] = 0x30;
      d[i]!++;
    } else {
      writeDigitsNumber(value, Buffer.from(d.buffer, d.byteOffset, 16), 0, 15);
      d.copyWithin(1, 0, 15);
      d[0] = 0x30;
    }
    this.last = value;
    for (let i = 0; i < len; i++) dst[s + i] = d[16 - len + i]!;
  }
}

const perDest = <T>(v: PerDestination<T>, id: string, what: string): T => {
  const r = typeof v === 'function' ? (v as (d: string) => T)(id) : typeof v === 'object' && v !== null ? (v as Record<string, T>)[id] : v;
  if (r === undefined) throw new Error(`splitFile: no ${what} for destination ${id}`);
  return r;
};

export async function splitFile(inPath: string, opts: SplitOptions): Promise<SplitOutput[]> {
  const src = await openSource(inPath, { layout: opts.sourceLayout, encoding: opts.encoding, framing: opts.framing });
  const skip = opts.skipRecordNos instanceof Set ? (opts.skipRecordNos as Set<number>) : new Set(opts.skipRecordNos ?? []);
  const view = makeRecordView(src.family.data);
  const outputs = new Map<string, Output>();
  let nextRef = opts.stampCentreRef?.start ?? 0n;
  // centreRefs are counted as numbers while they are safe integers (beyond that, as bigints)
  const SAFE_REFS = 2 ** 52;
  let nextNum = nextRef >= 0n && nextRef < BigInt(SAFE_REFS) ? Number(nextRef) : -1;

  const openOutput = (id: string): Output => {
    const target = opts.targetFormat(id);
    const family = familyOfLayoutName(target.layout);
    const encoding = target.encoding ?? family.encoding;
    const framing = target.framing ?? family.framing;
    const path = opts.outputPath(id);
    const h = opts.header;
    const headerValues: Partial<HeaderFields> = {
      fileType: target.fileType, codeType: codeTypeOf(encoding), senderCode: h.senderCode, senderName: h.senderName ?? '',
      createdDate: h.createdDate, createdTime: h.createdTime, receiverCode: perDest(h.receiverCode, id, 'receiverCode'),
      periodFrom: h.periodFrom ?? src.header.periodFrom, periodTo: h.periodTo ?? src.header.periodTo,
      fileSeq: String(perDest(h.fileSeq, id, 'fileSeq')), cycle: h.cycle ?? src.header.cycle,
    };
    const writer = new RecordFileWriter(path, framing);
    const out: Output = {
      info: { destinationId: id, path, recordCount: 0, totals: {}, fileType: target.fileType, layout: family.data.name, encoding, framing },
      family, encoding, mapping: getMapping(src.family.data.name, family.data.name), writer, totals: new TotalsAccumulator(family),
      canon: blankRecord(family.data), encoded: Buffer.alloc(family.recordLength),
      centreRefField: family.data.byName.get('centreRef'), centreDateField: family.data.byName.get('centreDate'), lastRef: -1,
      view: makeRecordView(family.data),
    };
    outputs.set(id, out);
    writeRecord(out, buildHeader(headerValues, family.recordLength), family.header, -1);
    return out;
  };

  const writeRecord = (out: Output, canon: Buffer, layout: Family['data'], recordNo: number) => {
    try {
      if (out.encoding === 'sjis') out.writer.write(canon, 0, layout.recordLength);
      else {
        canonicalToEncoding(out.encoding, layout, canon, 0, out.encoded, 0);
        out.writer.write(out.encoded);
      }
    } catch (err) {
      if (err instanceof FieldEncodeError) throw new FormatError(`record ${recordNo} of ${inPath} cannot be written to ${out.info.destinationId} (${out.encoding}): ${err.message}`, 'E109');
      throw err;
    }
  };

  const centreDateBytes = opts.stampCentreRef ? Buffer.from(opts.stampCentreRef.centreDate, 'latin1') : null;
  if (centreDateBytes && !/^[0-9]{8}$/.test(opts.stampCentreRef!.centreDate)) throw new Error('stampCentreRef.centreDate must be YYYYMMDD');
  const stamping = opts.stampCentreRef !== undefined;
  const refDigits = new RefDigits();
  const onForward = opts.onForward;

  const forward = (id: string, rec: Buffer, off: number, recordNo: number) => {
    const out = outputs.get(id) ?? openOutput(id);
    // Shift_JIS targets are mapped straight into the write buffer; others through a canonical record
    const inPlace = out.encoding === 'sjis';
    const len = out.family.recordLength;
    const target = inPlace ? out.writer.buffer : out.canon;
    const at = inPlace ? out.writer.reserve(len) : 0;
    try {
      out.mapping.apply(rec, off, target, at);
    } catch (err) {
      if (err instanceof FieldEncodeError) throw new FormatError(`record ${recordNo} of ${inPath} cannot be mapped to ${out.family.data.name}: ${err.message}`, 'E109');
      throw err;
    }
    let centreRef: string | undefined;
    if (stamping) {
      const refField = out.centreRefField;
      if (nextNum >= 0 && nextNum < SAFE_REFS) {
        const ref = nextNum++;
        if (refField) refDigits.write(ref, target, at + refField.offset, refField.length);
        if (out.info.firstCentreRef === undefined) out.info.firstCentreRef = BigInt(ref);
        out.lastRef = ref;
        if (onForward) centreRef = String(ref);
      } else {
        const ref = nextNum >= 0 ? BigInt(nextNum) : nextRef;
        nextNum = -1;
        nextRef = ref + 1n;
        if (refField) writeDigits(ref, target, at + refField.offset, refField.length);
        out.info.firstCentreRef ??= ref;
        out.info.lastCentreRef = ref;
        out.lastRef = -1;
        if (onForward) centreRef = String(ref);
      }
      const dateField = out.centreDateField;
      if (dateField) { const d = at + dateField.offset; for (let i = 0; i < 8; i++) target[d + i] = centreDateBytes![i]!; }
    }
    out.totals.add(target, at);
    out.info.recordCount++;
    if (inPlace) out.writer.commit(len);
    else {
      // encode straight into the write buffer
      try {
        canonicalToEncoding(out.encoding, out.family.data, out.canon, 0, out.writer.buffer, out.writer.reserve(len));
      } catch (err) {
        if (err instanceof FieldEncodeError) throw new FormatError(`record ${recordNo} of ${inPath} cannot be written to ${out.info.destinationId} (${out.encoding}): ${err.message}`, 'E109');
        throw err;
      }
      out.writer.commit(len);
    }
    if (onForward) {
      out.view.point(target, at);
      onForward(id, out.view.fields, { recordNo, centreRef, source: view.fields, sourceRecord: rec, sourceOffset: off, sourceLayout: src.family.data });
    }
  };

  try {
    await streamCanonical(src, (rec, off, recordNo, type) => {
      if (type !== '2' || skip.has(recordNo)) return;
      view.point(rec, off);
      const route = opts.routeOf(view.fields);
      if (route === null || (Array.isArray(route) && route.length === 0)) { opts.onUnrouted?.(recordNo, view.fields); return; }
      if (typeof route === 'string') forward(route, rec, off, recordNo);
      else for (const id of route) forward(id, rec, off, recordNo);
    });
    for (const out of outputs.values()) {
      if (out.lastRef >= 0) out.info.lastCentreRef = BigInt(out.lastRef);
      const trailer = blankRecord(out.family.trailer);
      out.totals.writeInto(trailer);
      out.info.totals = out.totals.values();
      writeRecord(out, trailer, out.family.trailer, -1);
      writeRecord(out, buildEnd(out.family.recordLength), out.family.end, -1);
      out.writer.close({ sync: opts.syncOutputs !== false });
    }
  } catch (err) {
    for (const out of outputs.values()) {
      out.writer.abandon();
      try { unlinkSync(out.info.path); } catch { /* not there */ }
    }
    throw err;
  }
  return [...outputs.values()].map((o) => o.info);
}
