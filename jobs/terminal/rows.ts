// 81 records for the ledger: per-file aggregates keyed like a 71 row (Jmanager and the 90-day query
// read only these), summed from the canonical record bytes in a byte-keyed hash table (no string
// per field, per record). The transactions themselves are packed (pack.ts); TXN_COLUMNS are the
// columns of a transaction as reconciliation reads it (and of terminal_txns, written before 010).
import { decodeField, readDigits, type FieldDef, type Layout } from '../../formats/index.ts';

export const TXN_COLUMNS = ['file_id', 'record_no', 'merchant_no', 'store_code', 'terminal_id', 'txn_date', 'slip_no', 'card_company_code', 'txn_type', 'amount', 'approval_no', 'masked_card_no'] as const;
export const AGG_KEY_COLUMNS = ['merchant_no', 'store_code', 'terminal_id', 'business_date', 'card_company_code', 'payment_kind', 'payment_method'] as const;
export const AGG_SUM_COLUMNS = ['sale_count', 'sale_amount', 'void_count', 'void_amount', 'return_count', 'return_amount'] as const;
export const AGG_COLUMNS = ['file_id', ...AGG_KEY_COLUMNS, ...AGG_SUM_COLUMNS] as const;

export type AggRow = (string | number)[];

const AGG_KEY_FIELDS = ['merchantNo', 'storeCode', 'terminalId', 'txnDate', 'cardCompanyCode', 'paymentKind', 'paymentMethod'] as const;

function fieldOf(layout: Layout, name: string): FieldDef {
  const def = layout.byName.get(name);
  if (!def) throw new Error(`layout ${layout.name} has no field ${name}`);
  return def;
}

/** The amount of a canonical 81 data record of one layout, as its transaction and aggregates count it. */
export class TerminalAmount {
  private readonly f: FieldDef;

  constructor(layout: Layout) {
    this.f = fieldOf(layout, 'amount');
  }

  /** Number() of the decoded field, from the digits where it is an N field. */
  of(buf: Buffer, off: number): number {
    const a = this.f;
    if (a.type === 'N') {
      const v = readDigits(buf, off + a.offset, a.length);
      if (!Number.isNaN(v)) return v;
    }
    return Number(decodeField(buf, off, a));
  }
}

/**
 * Sums transactions into 71-shaped rows: store x terminal x date x company x kind x method, keyed
 * on the key fields' raw bytes in an open-addressing table (one copy of the key bytes per distinct
 * key, sums in a Float64Array); decoded to strings once per distinct key at the end.
 */
export class TerminalAggregator {
  private readonly keyFields: FieldDef[];
  private readonly keyLength: number;
  private readonly txnType: FieldDef;
  private capacity = 1 << 12;
  private slots = new Int32Array(this.capacity); // entry index + 1, 0 = empty
  private hashes = new Int32Array(this.capacity / 2);
  private keys = Buffer.alloc((this.capacity / 2) * 64);
  private sums = new Float64Array((this.capacity / 2) * 6);
  private count = 0;

  constructor(private readonly layout: Layout) {
    this.keyFields = AGG_KEY_FIELDS.map((n) => fieldOf(layout, n));
    this.keyLength = this.keyFields.reduce((s, f) => s + f.length, 0);
    this.keys = Buffer.alloc((this.capacity / 2) * this.keyLength);
    this.txnType = fieldOf(layout, 'txnType');
  }

  /** 0 sale ('10'), 2 void ('20'), 4 return (anything else), as the decoded txnType says. */
  private slotOf(buf: Buffer, off: number): number {
    const t = this.txnType;
    if (t.type === 'N' && t.length === 2) {
      const a = buf[off + t.offset]!;
      const b = buf[off + t.offset + 1]!;
      return b !== 0x30 ? 4 : a === 0x31 ? 0 : a === 0x32 ? 2 : 4;
    }
    const v = decodeField(buf, off, t);
    return v === '10' ? 0 : v === '20' ? 2 : 4;
  }

  add(buf: Buffer, off: number, amount: number): void {
    const fields = this.keyFields;
    let h = 0x811c9dc5 | 0;
    for (let k = 0; k < fields.length; k++) {
      const f = fields[k]!;
      for (let i = off + f.offset, e = i + f.length; i < e; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
    }
    const mask = this.capacity - 1;
    let p = h & mask;
    let entry: number;
    for (;;) {
      const slot = this.slots[p]!;
      if (slot === 0) {
        entry = this.insert(p, h, buf, off);
        break;
      }
      if (this.hashes[slot - 1] === h && this.sameKey(slot - 1, buf, off)) {
        entry = slot - 1;
        break;
      }
      p = (p + 1) & mask;
    }
    const s = entry * 6 + this.slotOf(buf, off);
    this.sums[s]! += 1;
    this.sums[s + 1]! += amount;
  }

  private sameKey(entry: number, buf: Buffer, off: number): boolean {
    const keys = this.keys;
    let j = entry * this.keyLength;
    for (const f of this.keyFields) {
      for (let i = off + f.offset, e = i + f.length; i < e; i++) if (keys[j++] !== buf[i]) return false;
    }
    return true;
  }

  private insert(p: number, h: number, buf: Buffer, off: number): number {
    const entry = this.count++;
    let j = entry * this.keyLength;
    const keys = this.keys;
    for (const f of this.keyFields) for (let i = off + f.offset, e = i + f.length; i < e; i++) keys[j++] = buf[i]!;
    this.hashes[entry] = h;
    this.slots[p] = entry + 1;
    if (this.count * 2 >= this.capacity) this.grow();
    return entry;
  }

  private grow(): void {
    const capacity = this.capacity * 2;
    const slots = new Int32Array(capacity);
    for (let e = 0; e < this.count; e++) {
      let p = this.hashes[e]! & (capacity - 1);
      while (slots[p] !== 0) p = (p + 1) & (capacity - 1);
      slots[p] = e + 1;
    }
    const hashes = new Int32Array(capacity / 2);
    hashes.set(this.hashes);
    const keys = Buffer.alloc((capacity / 2) * this.keyLength);
    this.keys.copy(keys);
    const sums = new Float64Array((capacity / 2) * 6);
    sums.set(this.sums);
    Object.assign(this, { capacity, slots, hashes, keys, sums });
  }

  get size(): number {
    return this.count;
  }

  /** The key fields as they lie in the packed key bytes (offsets within one key). */
  packedKeyFields(): FieldDef[] {
    let at = 0;
    return this.keyFields.map((f) => {
      const d: FieldDef = { ...f, offset: at };
      at += f.length;
      return d;
    });
  }

  /**
   * true when every key field is N or C: then a distinct key's bytes are a distinct decoded key,
   * and a key that is printable ASCII decodes field by field to substr (N) or rtrim (C) of them.
   */
  get keysAsText(): boolean {
    return this.keyFields.every((f) => f.type === 'N' || f.type === 'C');
  }

  /**
   * Each distinct key: its packed bytes at keys[keyAt..] and its 6 sums at sums[sumAt..], grouped
   * by (merchantNo, txnDate) bytes in ascending order, first occurrence within a group. That is the
   * order of jm_aggregates' only index (merchant_no, business_date): rows inserted in index order
   * land next to each other, where inserting in first-occurrence order (a merchant at random per
   * row) splits index pages all over the tree and cost three times the insert itself (measured).
   */
  forEachEntry(use: (keys: Buffer, keyAt: number, keyLength: number, sums: Float64Array, sumAt: number) => void): void {
    const order = this.groupedOrder();
    for (let i = 0; i < order.length; i++) use(this.keys, order[i]! * this.keyLength, this.keyLength, this.sums, order[i]! * 6);
  }

  /**
   * The entries grouped by (merchantNo, txnDate) bytes, groups in ascending byte order, entries in
   * first-occurrence order within a group: a byte-keyed table of the groups (a file has a few per
   * merchant), the groups' bytes sorted, then a counting sort of the entries. No string per entry.
   */
  private groupedOrder(): Int32Array {
    const [m, , , d] = this.packedKeyFields();
    const L = this.keyLength;
    const keys = this.keys;
    const groupOf = new Int32Array(this.count);
    let cap = 64;
    while (cap < this.count * 2) cap *= 2;
    if (cap > 1 << 16) cap = 1 << 16;
    let table = new Int32Array(cap); // group index + 1, 0 = empty
    const firstEntry: number[] = []; // a group's first entry, whose key bytes stand for the group
    const hashOf = (at: number) => {
      let h = 0x811c9dc5 | 0;
      for (let i = at + m!.offset, e = i + m!.length; i < e; i++) h = Math.imul(h ^ keys[i]!, 0x01000193);
      for (let i = at + d!.offset, e = i + d!.length; i < e; i++) h = Math.imul(h ^ keys[i]!, 0x01000193);
      return h;
    };
    const sameGroup = (a: number, b: number) => {
      for (let i = m!.offset, e = i + m!.length; i < e; i++) if (keys[a + i] !== keys[b + i]) return false;
      for (let i = d!.offset, e = i + d!.length; i < e; i++) if (keys[a + i] !== keys[b + i]) return false;
      return true;
    };
    for (let e = 0; e < this.count; e++) {
      const at = e * L;
      let p = hashOf(at) & (cap - 1);
      for (;;) {
        const g = table[p]!;
        if (g === 0) {
          groupOf[e] = firstEntry.length;
          firstEntry.push(e);
          table[p] = firstEntry.length;
          if (firstEntry.length * 2 > cap) {
            // more groups than expected: a larger table, the groups placed again
            cap *= 2;
            table = new Int32Array(cap);
            firstEntry.forEach((f, gi) => {
              let q = hashOf(f * L) & (cap - 1);
              while (table[q] !== 0) q = (q + 1) & (cap - 1);
              table[q] = gi + 1;
            });
          }
          break;
        }
        if (sameGroup(firstEntry[g - 1]! * L, at)) { groupOf[e] = g - 1; break; }
        p = (p + 1) & (cap - 1);
      }
    }
    // groups in ascending (merchantNo, txnDate) bytes
    const groupKey = (g: number) => {
      const at = firstEntry[g]! * L;
      return keys.toString('latin1', at + m!.offset, at + m!.offset + m!.length) + keys.toString('latin1', at + d!.offset, at + d!.offset + d!.length);
    };
    const sortedGroups = firstEntry.map((_, g) => [groupKey(g), g] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const start = new Int32Array(firstEntry.length + 1);
    for (let e = 0; e < this.count; e++) start[groupOf[e]! + 1]!++;
    const rank = new Int32Array(firstEntry.length);
    sortedGroups.forEach(([, g], r) => { rank[g] = r; });
    const countByRank = new Int32Array(firstEntry.length + 1);
    for (let g = 0; g < firstEntry.length; g++) countByRank[rank[g]! + 1] = start[g + 1]!;
    for (let r = 0; r < firstEntry.length; r++) countByRank[r + 1]! += countByRank[r]!;
    const order = new Int32Array(this.count);
    for (let e = 0; e < this.count; e++) order[countByRank[rank[groupOf[e]!]!]!++] = e;
    return order;
  }

  /** One row per distinct decoded key, in the order the keys first occurred. */
  rows(fileId: string): AggRow[] {
    const packed = this.packedKeyFields();
    // N and C values are one-to-one with their bytes; other types (packed signs, K) may not be, so
    // rows whose keys decode alike are merged as the string-keyed sums always did.
    const merge = this.keyFields.some((f) => f.type !== 'N' && f.type !== 'C');
    const out: AggRow[] = [];
    const byKey = merge ? new Map<string, AggRow>() : null;
    for (let e = 0; e < this.count; e++) {
      const base = e * this.keyLength;
      const key = packed.map((d) => decodeField(this.keys, base, d));
      const sums = Array.from(this.sums.subarray(e * 6, e * 6 + 6));
      if (byKey) {
        const k = key.join('\t');
        const seen = byKey.get(k);
        if (seen) {
          for (let i = 0; i < 6; i++) (seen[8 + i] as number) += sums[i]!;
          continue;
        }
        const row = [fileId, ...key, ...sums];
        byKey.set(k, row);
        out.push(row);
      } else out.push([fileId, ...key, ...sums]);
    }
    return out;
  }
}
