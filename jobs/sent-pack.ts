// The compact form of what a 32 file carried, for reconciliation: per record its centreRef and the
// bytes of the few source fields reconciliation keeps (the card number already masked), copied
// from the canonical 31 record without decoding it. One packed batch per 32 file goes into the
// ledger's sent_batches (see sent-records.ts); unpacking gives exactly the sent_records rows the
// route used to write record by record (the same decoding, trimming and masking).
import { decodeField, maskCardNumber, type FieldDef, type FieldType, type Layout } from '../formats/index.ts';

/** The source fields kept (packed in source order); cardNo is kept masked, as ASCII. */
const KEPT = ['cardCompanyCode', 'merchantNo', 'terminalId', 'slipNo', 'useDate', 'txnType', 'amount', 'approvalNo', 'cardNo'] as const;

/** How the packed record is laid out: stored with each batch, so a batch stays readable if layouts change. */
export interface PackedField { name: string; type: FieldType; length: number }

/** One 32 file's records, packed. */
export interface PackedBatch {
  fields: PackedField[];
  count: number;
  firstRef: number;
  lastRef: number;
  /** centreRefs, float64 little-endian, in the order written (ascending) */
  refs: Buffer;
  records: Buffer;
  /** masked card numbers that did not fit the fast path, by record index */
  maskedOverrides: Record<number, string> | null;
}

const CHUNK_RECORDS = 1024;
const SPACE = 0x20;
const STAR = 0x2a;

/**
 * The kept fields (in source order) as spans to copy: neighbours in the source are one span. Gives
 * each span's source offset and length, the packed record's length and each field's packed offset.
 */
export function packedSpans(kept: readonly FieldDef[]): { from: number[]; lengths: number[]; recordLength: number; offsets: Map<string, number> } {
  const from: number[] = [];
  const lengths: number[] = [];
  const offsets = new Map<string, number>();
  let packed = 0;
  for (const f of kept) {
    const last = from.length - 1;
    if (last >= 0 && from[last]! + lengths[last]! === f.offset) lengths[last]! += f.length;
    else {
      from.push(f.offset);
      lengths.push(f.length);
    }
    offsets.set(f.name, packed);
    packed += f.length;
  }
  return { from, lengths, recordLength: packed, offsets };
}

/** Collects one destination's records from one source layout. */
export class SentPacker {
  readonly fields: PackedField[];
  private readonly from: number[]; // source offset of each span of kept fields
  private readonly lengths: number[];
  private readonly cardAt: number; // packed offset of the card slot
  private readonly cardSource: FieldDef;
  private readonly recordLength: number;
  private readonly chunks: Buffer[] = [];
  private chunk: Buffer;
  private at = 0;
  private refs: number[] = [];
  private overrides: Record<number, string> | null = null;
  count = 0;

  constructor(layout: Layout) {
    // kept fields in source order, so that neighbours are copied as one span
    const kept = KEPT.map((name) => {
      const f = layout.byName.get(name);
      if (!f) throw new Error(`layout ${layout.name} has no ${name}: it cannot be recorded as sent`);
      return f;
    }).sort((a, b) => a.offset - b.offset);
    const { from, lengths, recordLength: packed, offsets } = packedSpans(kept);
    this.from = from;
    this.lengths = lengths;
    const cardAt = offsets.get('cardNo')!;
    // the card slot holds the masked number as ASCII, whatever the source field's type
    this.fields = kept.map((f) => ({ name: f.name, type: f.name === 'cardNo' ? 'N' : f.type, length: f.length }));
    this.cardSource = layout.byName.get('cardNo')!;
    this.recordLength = packed;
    this.cardAt = cardAt;
    this.chunk = Buffer.allocUnsafe(packed * CHUNK_RECORDS);
  }

  add(rec: Buffer, off: number, centreRef: string): void {
    const ref = Number(centreRef);
    if (!Number.isSafeInteger(ref)) throw new Error(`centreRef ${centreRef} is out of range for the sent ledger`);
    if (this.at + this.recordLength > this.chunk.length) {
      this.chunks.push(this.chunk.subarray(0, this.at));
      this.chunk = Buffer.allocUnsafe(this.recordLength * CHUNK_RECORDS);
      this.at = 0;
    }
    const dst = this.chunk;
    const start = this.at;
    let p = start;
    for (let i = 0; i < this.from.length; i++) {
      const s = off + this.from[i]!;
      const n = this.lengths[i]!;
      for (let j = 0; j < n; j++) dst[p + j] = rec[s + j]!;
      p += n;
    }
    if (!maskInPlace(dst, start + this.cardAt, this.cardSource.length)) {
      // not plain digits: mask the decoded text, as the record-by-record writer did
      (this.overrides ??= {})[this.count] = maskCardNumber(decodeField(rec, off, this.cardSource).trim());
      dst.fill(SPACE, start + this.cardAt, start + this.cardAt + this.cardSource.length);
    }
    this.at = p;
    this.refs.push(ref);
    this.count++;
  }

  finish(): PackedBatch {
    const records = Buffer.concat([...this.chunks, this.chunk.subarray(0, this.at)]);
    const refs = Buffer.allocUnsafe(this.refs.length * 8);
    for (let i = 0; i < this.refs.length; i++) refs.writeDoubleLE(this.refs[i]!, i * 8);
    return { fields: this.fields, count: this.count, firstRef: this.refs[0] ?? 0, lastRef: this.refs[this.refs.length - 1] ?? 0, refs, records, maskedOverrides: this.overrides };
  }
}

/**
 * Masks an ASCII card number in place the way maskCardNumber masks its trimmed text (first 6 and
 * last 4 kept), left-aligned and padded with spaces. False (nothing changed) unless the field is
 * digits with only spaces around them, the case every validated record is in.
 */
function maskInPlace(buf: Buffer, s: number, len: number): boolean {
  let a = s;
  let b = s + len;
  while (a < b && buf[a] === SPACE) a++;
  while (b > a && buf[b - 1] === SPACE) b--;
  for (let i = a; i < b; i++) if (buf[i]! < 0x30 || buf[i]! > 0x39) return false;
  const t = b - a;
  const keepHead = t >= 13 ? 6 : 0;
  const keepTail = t > 4 ? 4 : t;
  for (let i = 0; i < t; i++) {
    const c = buf[a + i]!;
    buf[s + i] = i < keepHead || i >= t - keepTail ? c : STAR;
  }
  for (let i = s + t; i < s + len; i++) buf[i] = SPACE;
  return true;
}

/** The sent_records columns, in the order unpackBatch gives them. */
export const SENT_COLUMNS = [
  'centre_ref', 'file_id', 'source_file_id', 'card_company_code', 'merchant_no', 'terminal_id', 'slip_no',
  'use_date', 'txn_type', 'amount', 'approval_no', 'masked_card_no', 'centre_date',
] as const;

export interface StoredBatch {
  file_id: string;
  source_file_id: string;
  centre_date: string;
  fields: string;
  record_count: number | string;
  refs: Buffer;
  records: Buffer;
  masked_overrides: string | null;
}

/** The fields of a packed batch (its stored `fields` JSON) with their offsets in a packed record, and that record's length. */
export function packedFieldDefs(fieldsJson: string): { defs: Map<string, FieldDef>; length: number } {
  const defs = new Map<string, FieldDef>();
  let offset = 0;
  (JSON.parse(fieldsJson) as PackedField[]).forEach((f, index) => {
    defs.set(f.name, { name: f.name, type: f.type, length: f.length, offset, index });
    offset += f.length;
  });
  return { defs, length: offset };
}

/** A batch's sent_records rows (values in SENT_COLUMNS order), in the order they were written. */
export function unpackBatch(b: StoredBatch): unknown[][] {
  const { defs, length } = packedFieldDefs(b.fields);
  const get = (name: string) => defs.get(name)!;
  const [cc, merchant, terminal, slip, useDate, txnType, amount, approval, card] = KEPT.map(get);
  const overrides = b.masked_overrides ? (JSON.parse(b.masked_overrides) as Record<string, string>) : undefined;
  const n = Number(b.record_count);
  const rows: unknown[][] = new Array(n);
  const rec = b.records;
  for (let i = 0; i < n; i++) {
    const at = i * length;
    rows[i] = [
      b.refs.readDoubleLE(i * 8),
      b.file_id,
      b.source_file_id,
      decodeField(rec, at, cc!),
      decodeField(rec, at, merchant!).trim(),
      decodeField(rec, at, terminal!).trim(),
      decodeField(rec, at, slip!),
      decodeField(rec, at, useDate!),
      decodeField(rec, at, txnType!),
      Number(decodeField(rec, at, amount!)),
      decodeField(rec, at, approval!).trim(),
      overrides?.[i] ?? decodeField(rec, at, card!).trim(),
      b.centre_date,
    ];
  }
  return rows;
}
