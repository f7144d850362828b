// An 81 file's transactions, packed: per (file, transaction date) parts of at most PART_RECORDS
// records, each one terminal_batches row holding the bytes of the kept fields copied from the
// canonical records (the card number re-masked where it is not masked already), the record numbers
// and the amounts. A few rows per file instead of a terminal_txns row and an index entry per
// transaction: those inserts were most of the load's time. Reconciliation reads one date's parts
// (TerminalDay); rows that went into terminal_txns before migration 010 are read alongside, first.
import type { Knex } from 'knex';
import { decodeField, maskCardNumber, type FieldDef, type Layout } from '../../formats/index.ts';
import { writeTransaction, type Ledger } from '../../spool/ledger/index.ts';
import { packedFieldDefs, packedSpans, type PackedField } from '../sent-pack.ts';
import { TXN_COLUMNS } from './rows.ts';

/** The fields kept per transaction (packed in source order); txnDate is the part's own column. */
const KEPT = ['merchantNo', 'storeCode', 'terminalId', 'slipNo', 'cardCompanyCode', 'txnType', 'approvalNo', 'maskedCardNo'] as const;
/** Records per terminal_batches row at most (about 5 MB of packed records). */
export const PART_RECORDS = 65_536;
/** Parts' worth of records held unwritten across a file's dates at most: beyond it every date's part is written. */
const HELD_PARTS = 4;
const FIRST_CAPACITY = 1024;

/** One terminal_batches row. */
export interface TerminalPart {
  file_id: string;
  txn_date: string;
  part: number;
  fields: string;
  record_count: number;
  /** record numbers, int32 little-endian */
  record_nos: Buffer;
  /** amounts, float64 little-endian */
  amounts: Buffer;
  records: Buffer;
  /** re-masked card numbers that differ from the record's bytes, by record index (JSON), or null */
  masked_overrides: string | null;
}

export const PART_COLUMNS = ['file_id', 'txn_date', 'part', 'fields', 'record_count', 'record_nos', 'amounts', 'records', 'masked_overrides'] as const;

function fieldOf(layout: Layout, name: string): FieldDef {
  const def = layout.byName.get(name);
  if (!def) throw new Error(`layout ${layout.name} has no field ${name}`);
  return def;
}

/** One date's records of one file, until they make a part. */
class DateRecords {
  count = 0;
  records: Buffer;
  nos: Int32Array;
  amounts: Float64Array;
  overrides: Record<number, string> | null = null;

  constructor(private readonly recordLength: number) {
    this.records = Buffer.allocUnsafe(recordLength * FIRST_CAPACITY);
    this.nos = new Int32Array(FIRST_CAPACITY);
    this.amounts = new Float64Array(FIRST_CAPACITY);
  }

  /** Room for one more record (capacity doubles up to PART_RECORDS). */
  reserve(): void {
    if (this.count < this.nos.length) return;
    const capacity = Math.min(this.nos.length * 2, PART_RECORDS);
    const records = Buffer.allocUnsafe(this.recordLength * capacity);
    this.records.copy(records, 0, 0, this.count * this.recordLength);
    const nos = new Int32Array(capacity);
    nos.set(this.nos);
    const amounts = new Float64Array(capacity);
    amounts.set(this.amounts);
    Object.assign(this, { records, nos, amounts });
  }
}

/**
 * Packs one 81 file's transactions into parts by transaction date; `write` gets each part as it is
 * complete (synchronously), the last ones at finish(). Parts of one date are numbered in record
 * order, so (part id order, index) is the order the records came in.
 */
export class TerminalPacker {
  private readonly fields: string;
  private readonly from: number[]; // source offset of each span of kept fields
  private readonly lengths: number[];
  private readonly recordLength: number;
  private readonly card: FieldDef;
  private readonly cardAt: number;
  private readonly date: FieldDef;
  private readonly byDate = new Map<string, DateRecords>();
  private readonly parts = new Map<string, number>();
  private held = 0;
  private last: DateRecords | undefined;
  private lastDate = '';
  private lastDateBytes: Buffer;

  constructor(layout: Layout, private readonly fileId: string, private readonly write: (part: TerminalPart) => void, private readonly partRecords = PART_RECORDS) {
    const kept = KEPT.map((n) => fieldOf(layout, n)).sort((a, b) => a.offset - b.offset);
    const { from, lengths, recordLength: packed, offsets } = packedSpans(kept);
    this.from = from;
    this.lengths = lengths;
    const cardAt = offsets.get('maskedCardNo')!;
    this.fields = JSON.stringify(kept.map((f): PackedField => ({ name: f.name, type: f.type, length: f.length })));
    this.recordLength = packed;
    this.card = fieldOf(layout, 'maskedCardNo');
    this.cardAt = cardAt;
    this.date = fieldOf(layout, 'txnDate');
    this.lastDateBytes = Buffer.alloc(this.date.length);
  }

  /** The records of the record's date: the last ones unless the date's bytes changed. */
  private recordsFor(rec: Buffer, off: number): DateRecords {
    const s = off + this.date.offset;
    const n = this.date.length;
    const prev = this.lastDateBytes;
    let same = this.last !== undefined;
    for (let i = 0; same && i < n; i++) if (prev[i] !== rec[s + i]) same = false;
    if (same) return this.last!;
    rec.copy(prev, 0, s, s + n);
    this.lastDate = decodeField(rec, off, this.date);
    let d = this.byDate.get(this.lastDate);
    if (!d) this.byDate.set(this.lastDate, (d = new DateRecords(this.recordLength)));
    this.last = d;
    return d;
  }

  add(rec: Buffer, off: number, recordNo: number, amount: number): void {
    // terminal_txns refused such a row (amount not null); a validated 81 never has one
    if (Number.isNaN(amount)) throw new Error(`${this.fileId} record ${recordNo}: the amount is not a number`);
    const d = this.recordsFor(rec, off);
    d.reserve();
    const i = d.count;
    const dst = d.records;
    let p = i * this.recordLength;
    for (let k = 0; k < this.from.length; k++) {
      const s = off + this.from[k]!;
      const n = this.lengths[k]!;
      for (let j = 0; j < n; j++) dst[p + j] = rec[s + j]!;
      p += n;
    }
    const remasked = this.remaskedCard(rec, off);
    if (remasked !== null) (d.overrides ??= {})[i] = remasked;
    d.nos[i] = recordNo;
    d.amounts[i] = amount;
    d.count++;
    this.held++;
    if (d.count === this.partRecords) this.emit(this.lastDate, d);
    else if (this.held >= HELD_PARTS * this.partRecords) for (const [date, other] of this.byDate) this.emit(date, other);
  }

  /**
   * null when the stored card number is the record's own decoded value (it is masked already: the
   * online centre sends it masked), else maskCardNumber of it, so that a whole number can never
   * land in the ledger. Plain ASCII bytes are judged on the bytes; anything else on the text.
   */
  private remaskedCard(rec: Buffer, off: number): string | null {
    const f = this.card;
    const s = off + f.offset;
    let e = s + f.length;
    let plain = f.type === 'N' || f.type === 'C';
    for (let i = s; plain && i < e; i++) if (rec[i]! < 0x20 || rec[i]! > 0x7e) plain = false;
    if (!plain) {
      const text = decodeField(rec, off, f);
      const masked = maskCardNumber(text);
      return masked === text ? null : masked;
    }
    if (f.type === 'C') while (e > s && rec[e - 1] === 0x20) e--;
    const len = e - s;
    // maskCardNumber trims: a leading space always changes the value; then only its own form is kept
    let same = len === 0 || rec[s] !== 0x20;
    if (same && len > 4) {
      const from = len >= 13 ? s + 6 : s;
      for (let i = from; i < e - 4; i++) if (rec[i] !== 0x2a) { same = false; break; }
    }
    return same ? null : maskCardNumber(decodeField(rec, off, f));
  }

  private emit(date: string, d: DateRecords): void {
    if (d.count === 0) return;
    const part = this.parts.get(date) ?? 0;
    this.parts.set(date, part + 1);
    const n = d.count;
    const row: TerminalPart = {
      file_id: this.fileId, txn_date: date, part, fields: this.fields, record_count: n,
      record_nos: Buffer.from(d.nos.buffer, 0, n * 4), amounts: Buffer.from(d.amounts.buffer, 0, n * 8),
      records: d.records.subarray(0, n * this.recordLength), masked_overrides: d.overrides ? JSON.stringify(d.overrides) : null,
    };
    this.held -= n;
    this.byDate.delete(date);
    if (this.last === d) this.last = undefined;
    this.write(row);
  }

  /** Writes what is left of every date. */
  finish(): void {
    for (const [date, d] of [...this.byDate]) this.emit(date, d);
  }
}

/** A terminal transaction as reconciliation reads it (the terminal_txns columns, but the id). */
export interface TerminalTxn {
  file_id: string;
  record_no: number;
  merchant_no: string;
  store_code: string;
  terminal_id: string;
  txn_date: string;
  slip_no: string;
  card_company_code: string;
  txn_type: string;
  amount: number;
  approval_no: string;
  masked_card_no: string;
}

interface StoredPart {
  file_id: string;
  fields: string;
  record_count: number | string;
  record_nos: Buffer;
  amounts: Buffer;
  records: Buffer;
  masked_overrides: string | null;
  defs: Map<string, FieldDef>;
  length: number;
  overrides: Record<string, string> | undefined;
}

/**
 * One date's transactions in the order they were loaded (what terminal_txns' ids gave): rows of
 * terminal_txns first (loaded before migration 010), then the packed parts in the order written.
 * The key columns are decoded once (reconciliation sorts on them); a whole row on demand.
 */
export class TerminalDay {
  readonly merchantNos: string[] = [];
  readonly terminalIds: string[] = [];
  readonly slipNos: string[] = [];
  private readonly legacy: TerminalTxn[];
  private readonly parts: StoredPart[];
  /** per transaction past the legacy rows: its part and index there */
  private readonly partOf: Int32Array;
  private readonly indexOf: Int32Array;

  constructor(readonly date: string, legacy: TerminalTxn[], stored: Omit<StoredPart, 'defs' | 'length' | 'overrides'>[]) {
    this.legacy = legacy;
    for (const r of legacy) {
      this.merchantNos.push(r.merchant_no);
      this.terminalIds.push(r.terminal_id);
      this.slipNos.push(r.slip_no);
    }
    this.parts = stored.map((p) => ({ ...p, ...packedFieldDefs(p.fields), overrides: p.masked_overrides ? (JSON.parse(p.masked_overrides) as Record<string, string>) : undefined }));
    const packed = this.parts.reduce((s, p) => s + Number(p.record_count), 0);
    this.partOf = new Int32Array(packed);
    this.indexOf = new Int32Array(packed);
    let t = 0;
    this.parts.forEach((p, pi) => {
      const merchant = p.defs.get('merchantNo')!;
      const terminal = p.defs.get('terminalId')!;
      const slip = p.defs.get('slipNo')!;
      for (let i = 0, n = Number(p.record_count); i < n; i++, t++) {
        const at = i * p.length;
        this.merchantNos.push(decodeField(p.records, at, merchant));
        this.terminalIds.push(decodeField(p.records, at, terminal));
        this.slipNos.push(decodeField(p.records, at, slip));
        this.partOf[t] = pi;
        this.indexOf[t] = i;
      }
    });
  }

  get length(): number {
    return this.merchantNos.length;
  }

  /** Transaction i (in load order) as a whole row. */
  row(i: number): TerminalTxn {
    if (i < this.legacy.length) return this.legacy[i]!;
    const t = i - this.legacy.length;
    const p = this.parts[this.partOf[t]!]!;
    const j = this.indexOf[t]!;
    const at = j * p.length;
    const d = (name: string) => decodeField(p.records, at, p.defs.get(name)!);
    return {
      file_id: p.file_id, record_no: p.record_nos.readInt32LE(j * 4), merchant_no: this.merchantNos[i]!, store_code: d('storeCode'),
      terminal_id: this.terminalIds[i]!, txn_date: this.date, slip_no: this.slipNos[i]!, card_company_code: d('cardCompanyCode'), txn_type: d('txnType'),
      amount: p.amounts.readDoubleLE(j * 8), approval_no: d('approvalNo'), masked_card_no: p.overrides?.[j] ?? d('maskedCardNo'),
    };
  }
}

/** The transactions of `date` (YYYYMMDD), packed and former rows. */
export async function readTerminalDay(ledger: Ledger, date: string): Promise<TerminalDay> {
  const { db } = ledger;
  const legacy = (await db('terminal_txns').where('txn_date', date).orderBy('id').select(...TXN_COLUMNS)) as TerminalTxn[];
  for (const r of legacy) r.amount = Number(r.amount); // PostgreSQL gives bigints as strings
  const parts = await db('terminal_batches').where('txn_date', date).orderBy('id').select('file_id', 'fields', 'record_count', 'record_nos', 'amounts', 'records', 'masked_overrides');
  return new TerminalDay(date, legacy, parts);
}

/** Every transaction of `fileId` (any date) in load order: for tests and investigation, not the hot paths. */
export async function terminalTxnsOfFile(ledger: Ledger, fileId: string): Promise<TerminalTxn[]> {
  const dates = (await ledger.db('terminal_batches').where('file_id', fileId).distinct('txn_date')) as { txn_date: string }[];
  const legacyDates = (await ledger.db('terminal_txns').where('file_id', fileId).distinct('txn_date')) as { txn_date: string }[];
  const out: TerminalTxn[] = [];
  for (const date of new Set([...legacyDates, ...dates].map((d) => d.txn_date))) {
    const day = await readTerminalDay(ledger, date);
    for (let i = 0; i < day.length; i++) {
      const r = day.row(i);
      if (r.file_id === fileId) out.push(r);
    }
  }
  return out.sort((a, b) => a.record_no - b.record_no);
}

/** Whether any transaction has a date `op` `date`. */
export async function hasTerminalTxns(ledger: Ledger, op: '=' | '>=', date: string): Promise<boolean> {
  const { db } = ledger;
  if (await db('terminal_batches').where('txn_date', op, date).first(db.raw('1 as x'))) return true;
  return Boolean(await db('terminal_txns').where('txn_date', op, date).first(db.raw('1 as x')));
}

/** Deletes the transactions dated before `cutoffDate`; returns how many there were. */
export async function purgeTerminalTxns(ledger: Ledger, cutoffDate: string): Promise<number> {
  return writeTransaction(ledger, async (trx: Knex.Transaction) => {
    const packed = (await trx('terminal_batches').where('txn_date', '<', cutoffDate).sum({ n: 'record_count' }).first()) as { n: unknown } | undefined;
    await trx('terminal_batches').where('txn_date', '<', cutoffDate).delete();
    const rows = await trx('terminal_txns').where('txn_date', '<', cutoffDate).delete();
    return Number(packed?.n ?? 0) + rows;
  });
}
