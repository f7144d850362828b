// Forwarded bills, packed: what utility_bills keeps of each bill a 23 forwarded, written as one
// utility_bill_batches row per part of up to 16,384 bills instead of one row (and three B-tree
// entries) per bill, the way jobs/sent-pack.ts packs what a 32 carried. Readers of utility_bills
// (the 33's answers, reconciliation, `tsunagi utility show`) call materializeUtilityBills first,
// which turns the parts into rows, as materializeSentRecords does for sent_records.
// Bill i of a part has centreRef first_ref + i: a 23's bills take consecutive centreRefs in the
// order they are forwarded.
import type { Knex } from 'knex';
import { decodeField, getLayout } from '../../formats/index.ts';
import { writeTransaction, type Ledger } from '../../spool/ledger/index.ts';
import { SqliteBatchInsert, withRawSqlite } from '../../spool/ledger/sqlite-raw.ts';
import { packedFieldDefs, type PackedField } from '../sent-pack.ts';
import { copyBytes } from './common.ts';

/** Fields of the standard 23 record kept, in record order: one span (customerNo .. billNo). */
const FROM_BILL = ['customerNo', 'billingMonth', 'billingKind', 'amount', 'useDate', 'billNo'] as const;
/** Then what the bill got: the card company, the last 4 digits of the card charged, the 23's record number. */
const ADDED: PackedField[] = [
  { name: 'cardCompanyCode', type: 'N', length: 3 },
  { name: 'cardLast4', type: 'N', length: 4 },
  { name: 'recordNo', type: 'N', length: 9 },
];

const PART_RECORDS = 16_384;

export const BILL_COLUMNS = ['partner_id', 'billing_month', 'bill_no', 'customer_no', 'amount', 'use_date', 'source_file_id', 'centre_ref', 'card_company_code', 'card_last4', 'source_record_no'] as const;

function billSpan(): { from: number; length: number; fields: PackedField[] } {
  const layout = getLayout('billing.data');
  const defs = FROM_BILL.map((n) => layout.byName.get(n)!);
  for (let i = 1; i < defs.length; i++) if (defs[i]!.offset !== defs[i - 1]!.offset + defs[i - 1]!.length) throw new Error('billing.data: the kept bill fields are not one span');
  const from = defs[0]!.offset;
  const length = defs[defs.length - 1]!.offset + defs[defs.length - 1]!.length - from;
  return { from, length, fields: [...defs.map((f) => ({ name: f.name, type: f.type, length: f.length })), ...ADDED] };
}

/** Packs one 23's forwarded bills and writes them part by part (idempotent: a retry writes the same parts). */
export class BillBatchWriter {
  private readonly span = billSpan();
  private readonly recordLength: number;
  private readonly fieldsJson: string;
  private chunk: Buffer;
  private count = 0;
  private firstRef = 0;
  private part = 0;
  private chain: Promise<void> = Promise.resolve();
  private error: unknown;

  constructor(
    private readonly ledger: Ledger,
    private readonly sourceFileId: string,
    private readonly partnerId: string,
  ) {
    this.recordLength = this.span.fields.reduce((a, f) => a + f.length, 0);
    this.fieldsJson = JSON.stringify(this.span.fields);
    this.chunk = Buffer.allocUnsafe(this.recordLength * PART_RECORDS);
  }

  /**
   * One forwarded bill: its standard 23 record at bill[off], the card company code (3 ASCII
   * digits), the card's last 4 digits at last4[at, at + 4), its record number and centreRef
   * (one more than the bill before).
   */
  add(bill: Buffer, off: number, companyCode: Buffer, last4: Buffer, at: number, recordNo: number, centreRef: number): void {
    if (this.count === 0) this.firstRef = centreRef;
    else if (centreRef !== this.firstRef + this.count) throw new Error(`bill centreRef ${centreRef} does not follow ${this.firstRef + this.count - 1}`);
    const dst = this.chunk;
    let p = this.count * this.recordLength;
    copyBytes(bill, off + this.span.from, dst, p, this.span.length);
    p += this.span.length;
    dst[p] = companyCode[0]!; dst[p + 1] = companyCode[1]!; dst[p + 2] = companyCode[2]!;
    dst[p + 3] = last4[at]!; dst[p + 4] = last4[at + 1]!; dst[p + 5] = last4[at + 2]!; dst[p + 6] = last4[at + 3]!;
    let v = recordNo;
    for (let i = p + 15; i >= p + 7; i--) { dst[i] = 0x30 + (v % 10); v = Math.floor(v / 10); }
    if (v !== 0) throw new Error(`record number ${recordNo} does not fit 9 digits`);
    if (++this.count === PART_RECORDS) this.write(this.takePart());
  }

  private takePart(): Record<string, unknown> {
    const row = {
      source_file_id: this.sourceFileId, part: this.part++, partner_id: this.partnerId, fields: this.fieldsJson, record_count: this.count,
      first_ref: this.firstRef, records: this.chunk.subarray(0, this.count * this.recordLength), created_at: Date.now(),
    };
    this.count = 0;
    this.chunk = Buffer.allocUnsafe(this.recordLength * PART_RECORDS); // the part keeps the old one until it is written
    return row;
  }

  private write(row: Record<string, unknown>, trx?: Knex.Transaction): void {
    const insert = (db: Knex) => db('utility_bill_batches').insert(row).onConflict(['source_file_id', 'part']).ignore();
    this.chain = this.chain
      .then(async () => {
        if (this.error) return;
        // a part before the last is not synced on its own: the commit that publishes the 32s syncs it first
        if (trx) await insert(trx);
        else await writeTransaction(this.ledger, (t) => insert(t), { lazy: true });
      })
      .catch((err: unknown) => {
        this.error ??= err; // kept for finish(): a rejection nobody awaits yet would crash the process
      });
  }

  /** Waits for the parts written so far (before finish(trx): they use the pool's connection). */
  async settle(): Promise<void> {
    await this.chain;
    if (this.error) throw this.error;
  }

  /** Writes the last part, in `trx` (with the 32 files' rows). */
  async finish(trx: Knex.Transaction): Promise<void> {
    if (this.count > 0) this.write(this.takePart(), trx);
    await this.settle();
  }
}

interface StoredBills { id: number | string; source_file_id: string; partner_id: string; fields: string; record_count: number | string; first_ref: number | string; records: Buffer }

/** A part's utility_bills rows (values in BILL_COLUMNS order). */
function unpackBills(b: StoredBills): unknown[][] {
  const { defs, length: offset } = packedFieldDefs(b.fields);
  const [customer, month, amount, useDate, billNo, company, last4, recordNo] = ['customerNo', 'billingMonth', 'amount', 'useDate', 'billNo', 'cardCompanyCode', 'cardLast4', 'recordNo'].map((n) => defs.get(n)!);
  const n = Number(b.record_count);
  const first = Number(b.first_ref);
  const rows: unknown[][] = new Array(n);
  const rec = b.records;
  for (let i = 0; i < n; i++) {
    const at = i * offset;
    rows[i] = [
      b.partner_id, decodeField(rec, at, month!), decodeField(rec, at, billNo!).trim(), decodeField(rec, at, customer!).trim(), Number(decodeField(rec, at, amount!)),
      decodeField(rec, at, useDate!), b.source_file_id, first + i, decodeField(rec, at, company!), decodeField(rec, at, last4!), Number(decodeField(rec, at, recordNo!)),
    ];
  }
  return rows;
}

/** The keys (billing month + bill number, as in the standard 23) of the bills not yet materialized, of other files of one utility. */
export async function pendingBillKeys(ledger: Ledger, partnerId: string, exceptFileId: string, keys: BillKeys): Promise<void> {
  const parts = (await ledger.db('utility_bill_batches').where({ partner_id: partnerId }).whereNot({ source_file_id: exceptFileId }).select('fields', 'record_count', 'records')) as StoredBills[];
  for (const b of parts) {
    const { defs, length } = packedFieldDefs(b.fields);
    const monthAt = defs.get('billingMonth')!.offset, billAt = defs.get('billNo')!.offset;
    for (let i = 0; i < Number(b.record_count); i++) keys.add(b.records, i * length + monthAt, i * length + billAt);
  }
}

const MATERIALIZE_PARTS = 4; // parts per transaction: about 65,000 rows, as materializeSentRecords

/**
 * Turns the packed parts into utility_bills rows (insert or ignore: a row already there, with its
 * answer, stays as it is) and deletes them, a few parts per transaction: a crash leaves either the
 * part or its rows. Cheap when nothing is pending.
 */
export async function materializeUtilityBills(ledger: Ledger): Promise<number> {
  const ids = ((await ledger.db('utility_bill_batches').orderBy('id').select('id')) as { id: number | string }[]).map((r) => r.id);
  let written = 0;
  const columns = ['id', 'source_file_id', 'partner_id', 'fields', 'record_count', 'first_ref', 'records'];
  for (let g = 0; g < ids.length; g += MATERIALIZE_PARTS) {
    const group = ids.slice(g, g + MATERIALIZE_PARTS);
    if (ledger.dialect === 'sqlite') {
      written += await withRawSqlite(ledger, (conn) => {
        conn.exec('begin immediate');
        try {
          const marks = group.map(() => '?').join(',');
          const parts = conn.prepare(`select ${columns.join(',')} from utility_bill_batches where id in (${marks}) order by id`).all(...group) as StoredBills[];
          const insert = new SqliteBatchInsert(conn, 'utility_bills', BILL_COLUMNS, 'insert or ignore');
          let n = 0;
          for (const p of parts) for (const row of unpackBills(p)) { insert.add(row); n++; }
          insert.end();
          conn.prepare(`delete from utility_bill_batches where id in (${marks})`).run(...group);
          conn.exec('commit');
          return n;
        } catch (err) {
          try { conn.exec('rollback'); } catch { /* no transaction left */ }
          throw err;
        }
      });
    } else {
      written += await writeTransaction(ledger, async (trx) => {
        const parts = (await trx('utility_bill_batches').whereIn('id', group).orderBy('id').forUpdate().select(...columns)) as StoredBills[];
        let n = 0;
        for (const p of parts) {
          const rows = unpackBills(p);
          for (let i = 0; i < rows.length; i += 1000) {
            await trx('utility_bills').insert(rows.slice(i, i + 1000).map((r) => Object.fromEntries(BILL_COLUMNS.map((c, k) => [c, r[k]])))).onConflict(['partner_id', 'billing_month', 'bill_no']).ignore();
          }
          n += rows.length;
        }
        await trx('utility_bill_batches').whereIn('id', parts.map((p) => p.id)).delete();
        return n;
      });
    }
  }
  return written;
}

/**
 * A set of bill keys (billing month + bill number: 18 bytes of the standard 23) in typed arrays: a
 * million keys take about 30 MB, where a Set of strings takes several times that. Open
 * addressing with linear probing; each slot keeps the key's hash, so a probe compares bytes only
 * when the hashes match.
 */
export class BillKeys {
  static readonly MONTH = 6;
  static readonly BILL = 12;
  private static readonly KEY = 18;
  private keys: Buffer;
  private slots: Int32Array; // key index + 1 (0: empty)
  private hashes: Int32Array;
  private mask: number;
  size = 0;

  constructor(expected = 1 << 12) {
    const n = 1 << Math.ceil(Math.log2(Math.max(16, expected * 2)));
    this.slots = new Int32Array(n);
    this.hashes = new Int32Array(n);
    this.mask = n - 1;
    this.keys = Buffer.allocUnsafe(BillKeys.KEY * (n >> 1));
  }

  /** A 32-bit hash (FNV-1a) of the key at buf[monthAt, +6) + buf[billAt, +12). */
  static hash(buf: Buffer, monthAt: number, billAt: number): number {
    let h = 0x811c9dc5 | 0;
    for (let i = 0; i < BillKeys.MONTH; i++) h = Math.imul(h ^ buf[monthAt + i]!, 0x01000193);
    for (let i = 0; i < BillKeys.BILL; i++) h = Math.imul(h ^ buf[billAt + i]!, 0x01000193);
    return h ^ (h >>> 15);
  }

  private equals(k: number, buf: Buffer, monthAt: number, billAt: number): boolean {
    const keys = this.keys;
    const at = k * BillKeys.KEY;
    for (let i = 0; i < BillKeys.MONTH; i++) if (keys[at + i] !== buf[monthAt + i]) return false;
    for (let i = 0; i < BillKeys.BILL; i++) if (keys[at + BillKeys.MONTH + i] !== buf[billAt + i]) return false;
    return true;
  }

  /** The slot holding the key, or the empty slot where it goes (~slot, negative). */
  private find(h: number, buf: Buffer, monthAt: number, billAt: number): number {
    let slot = h & this.mask;
    for (;;) {
      const k = this.slots[slot]!;
      if (k === 0) return ~slot;
      if (this.hashes[slot] === h && this.equals(k - 1, buf, monthAt, billAt)) return slot;
      slot = (slot + 1) & this.mask;
    }
  }

  /** Adds the key at buf[monthAt, +6) + buf[billAt, +12); false when it was there already. */
  add(buf: Buffer, monthAt: number, billAt: number): boolean {
    if ((this.size + 1) * 2 > this.slots.length) this.grow();
    const h = BillKeys.hash(buf, monthAt, billAt);
    const found = this.find(h, buf, monthAt, billAt);
    if (found >= 0) return false;
    const k = this.size++;
    const at = k * BillKeys.KEY;
    copyBytes(buf, monthAt, this.keys, at, BillKeys.MONTH);
    copyBytes(buf, billAt, this.keys, at + BillKeys.MONTH, BillKeys.BILL);
    this.slots[~found] = k + 1;
    this.hashes[~found] = h;
    return true;
  }

  has(buf: Buffer, monthAt: number, billAt: number): boolean {
    return this.size > 0 && this.find(BillKeys.hash(buf, monthAt, billAt), buf, monthAt, billAt) >= 0;
  }

  private grow(): void {
    const old = { keys: this.keys, size: this.size };
    const n = this.slots.length * 2;
    this.slots = new Int32Array(n);
    this.hashes = new Int32Array(n);
    this.mask = n - 1;
    this.keys = Buffer.allocUnsafe(BillKeys.KEY * (n >> 1));
    this.size = 0;
    for (let k = 0; k < old.size; k++) this.add(old.keys, k * BillKeys.KEY, k * BillKeys.KEY + BillKeys.MONTH);
  }
}

/**
 * Duplicate bill keys within one file, found without holding every key: the first pass over the
 * file adds each bill key's 32-bit hash (4 bytes a bill), repeated() sorts them and keeps the
 * hashes seen more than once (a few hundred in a million distinct keys), and the second pass
 * compares whole keys only for the bills with one of those hashes.
 */
export class KeyHashes {
  private hashes = new Int32Array(1 << 16);
  private n = 0;

  add(buf: Buffer, monthAt: number, billAt: number): void {
    if (this.n === this.hashes.length) {
      const bigger = new Int32Array(this.hashes.length * 2);
      bigger.set(this.hashes);
      this.hashes = bigger;
    }
    this.hashes[this.n++] = BillKeys.hash(buf, monthAt, billAt);
  }

  /** The hashes added more than once (and lets go of the rest). */
  repeated(): Set<number> {
    const sorted = this.hashes.subarray(0, this.n).sort();
    const out = new Set<number>();
    for (let i = 1; i < sorted.length; i++) if (sorted[i] === sorted[i - 1]) out.add(sorted[i]!);
    this.hashes = new Int32Array(0);
    this.n = 0;
    return out;
  }
}
