// The portal's Jmanager search reads a head office's last 90 days from memory: one ledger query
// (the 71 key order of jobs/jmanager, summed across 81 files) fills a columnar snapshot (codes as
// small integers into sorted dictionaries, sums in typed arrays), and every search, page and CSV
// afterwards filters and groups it without touching the ledger. The snapshot is used only while
// the aggregates table is unchanged: its lowest and highest row ids (a new 81 load raises the
// highest, the purge of old dates raises the lowest) are checked on every request, two O(log n)
// lookups, and a change reloads it. scripts/bench/web.ts measures warm and cold searches.
import type { Ledger } from '../spool/ledger/index.ts';
import { queryAggregates, type AggregateFilter, type AggregateRow } from '../jobs/jmanager/aggregates.ts';
import { AGG_SUM_COLUMNS } from '../jobs/terminal/rows.ts';

type SumColumn = (typeof AGG_SUM_COLUMNS)[number];
type KeyColumn = 'store_code' | 'merchant_no' | 'business_date' | 'card_company_code' | 'payment_kind' | 'payment_method' | 'terminal_id';
const KEY_COLUMNS: KeyColumn[] = ['store_code', 'merchant_no', 'business_date', 'card_company_code', 'payment_kind', 'payment_method', 'terminal_id'];
export type Grouped = Record<string, string | number>;

/** Sorted distinct values of one key column, and each row's index into them. */
interface Dictionary {
  values: string[];
  codes: Uint32Array;
  index: Map<string, number>;
}

export class Snapshot {
  readonly length: number;
  private readonly dict: Record<KeyColumn, Dictionary>;
  private readonly sums: Record<SumColumn, Float64Array>;

  constructor(
    readonly version: string,
    readonly from: string,
    readonly to: string,
    rows: AggregateRow[],
  ) {
    this.length = rows.length;
    this.dict = Object.fromEntries(
      KEY_COLUMNS.map((k) => {
        const values = [...new Set(rows.map((r) => r[k]))].sort();
        const index = new Map(values.map((v, i) => [v, i]));
        const codes = new Uint32Array(rows.length);
        rows.forEach((r, i) => (codes[i] = index.get(r[k])!));
        return [k, { values, codes, index }];
      }),
    ) as Record<KeyColumn, Dictionary>;
    this.sums = Object.fromEntries(AGG_SUM_COLUMNS.map((c) => [c, Float64Array.from(rows, (r) => r[c])])) as Record<SumColumn, Float64Array>;
  }

  row(i: number): AggregateRow {
    const r: Record<string, string | number> = {};
    for (const k of KEY_COLUMNS) r[k] = this.dict[k].values[this.dict[k].codes[i]!]!;
    for (const c of AGG_SUM_COLUMNS) r[c] = this.sums[c][i]!;
    return r as unknown as AggregateRow;
  }

  /** Indices of the rows within the filter, in 71 order. */
  select(f: AggregateFilter): number[] {
    const dates = this.dict.business_date;
    // Dates are a sorted dictionary: the range is a range of codes.
    let lo = dates.values.findIndex((d) => d >= f.from);
    if (lo < 0) lo = dates.values.length;
    let hi = dates.values.length - 1;
    while (hi >= 0 && dates.values[hi]! > f.to) hi--;
    const eq = (k: KeyColumn, v: string | undefined) => (v === undefined ? -1 : (this.dict[k].index.get(v) ?? -2));
    const store = eq('store_code', f.store);
    const terminal = eq('terminal_id', f.terminal);
    const company = eq('card_company_code', f.cardCompany);
    const out: number[] = [];
    if (store === -2 || terminal === -2 || company === -2 || lo > hi) return out;
    const dc = dates.codes;
    const sc = this.dict.store_code.codes;
    const tc = this.dict.terminal_id.codes;
    const cc = this.dict.card_company_code.codes;
    for (let i = 0; i < this.length; i++) {
      const d = dc[i]!;
      if (d < lo || d > hi) continue;
      if (store >= 0 && sc[i] !== store) continue;
      if (terminal >= 0 && tc[i] !== terminal) continue;
      if (company >= 0 && cc[i] !== company) continue;
      out.push(i);
    }
    return out;
  }

  /** Totals of the selected rows, and either every row (detail) or the rows summed by one key column. */
  group(selected: number[], by: KeyColumn | null): { groups: Grouped[] | number[]; totals: Record<SumColumn, number> } {
    const totals = Object.fromEntries(AGG_SUM_COLUMNS.map((c) => [c, 0])) as Record<SumColumn, number>;
    const cols = AGG_SUM_COLUMNS.map((c) => this.sums[c]);
    const t = new Float64Array(cols.length);
    if (!by) {
      for (const i of selected) for (let c = 0; c < cols.length; c++) t[c]! += cols[c]![i]!;
      AGG_SUM_COLUMNS.forEach((c, j) => (totals[c] = t[j]!));
      return { groups: selected, totals };
    }
    const dict = this.dict[by];
    const acc = new Float64Array(dict.values.length * cols.length);
    const seen = new Uint8Array(dict.values.length);
    for (const i of selected) {
      const g = dict.codes[i]!;
      seen[g] = 1;
      const base = g * cols.length;
      for (let c = 0; c < cols.length; c++) {
        const v = cols[c]![i]!;
        acc[base + c]! += v;
        t[c]! += v;
      }
    }
    AGG_SUM_COLUMNS.forEach((c, j) => (totals[c] = t[j]!));
    const groups: Grouped[] = [];
    for (let g = 0; g < dict.values.length; g++) {
      if (!seen[g]) continue;
      const row: Grouped = { [by]: dict.values[g]! };
      AGG_SUM_COLUMNS.forEach((c, j) => (row[c] = acc[g * cols.length + j]!));
      groups.push(row);
    }
    return { groups, totals };
  }
}

async function tableVersion(ledger: Ledger): Promise<string> {
  // Two queries: SQLite answers a lone min() or max() from the index, but not both in one.
  const lo = (await ledger.db('jm_aggregates').min({ v: 'id' }).first()) as { v: unknown } | undefined;
  const hi = (await ledger.db('jm_aggregates').max({ v: 'id' }).first()) as { v: unknown } | undefined;
  return `${lo?.v ?? ''}-${hi?.v ?? ''}`;
}

export class JmanagerSnapshots {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly loading = new Map<string, Promise<Snapshot>>();

  constructor(
    private readonly ledger: Ledger,
    private readonly maxHeadOffices = 16,
  ) {}

  /** The snapshot of `partnerId` for the window [from, to], loaded (or reloaded) when needed. */
  async get(partnerId: string, merchantNos: readonly string[], from: string, to: string): Promise<Snapshot> {
    const version = await tableVersion(this.ledger);
    const have = this.snapshots.get(partnerId);
    if (have && have.version === version && have.from === from && have.to === to) {
      this.snapshots.delete(partnerId); // most recently used last
      this.snapshots.set(partnerId, have);
      return have;
    }
    const key = `${partnerId}|${version}|${from}|${to}`;
    let pending = this.loading.get(key);
    if (!pending) {
      pending = (async () => {
        const snap = new Snapshot(version, from, to, await queryAggregates(this.ledger, { merchantNos, from, to }));
        this.snapshots.delete(partnerId);
        this.snapshots.set(partnerId, snap);
        while (this.snapshots.size > this.maxHeadOffices) this.snapshots.delete(this.snapshots.keys().next().value!);
        return snap;
      })().finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }
}
