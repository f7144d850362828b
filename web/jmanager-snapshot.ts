// The portal's Jmanager search reads a head office's last 90 days from memory: one ledger query
// (the 71 key order of jobs/jmanager, summed across 81 files) fills a columnar snapshot (codes as
// small integers into sorted dictionaries, sums in typed arrays), and every search, page and CSV
// afterwards filters and groups it without touching the ledger.
//
// Keeping it current without making searches wait (issue 16: a cold search took 2-5 s):
// - every request checks the table's lowest and highest row ids (two O(log n) lookups). When only
//   the highest moved, the rows added since the snapshot are looked at by id (a range of the
//   primary key: the last 81 loads only) and the snapshot is kept unless one of them is this head
//   office's. So another head office's 81 load no longer reloads everybody's snapshot.
// - the listener warms the snapshots of the head offices at start and checks the cached ones
//   every few seconds (`refresh`), so the reload after a head office's own 81 load is usually
//   done before its next search; a search page that comes first is answered from the snapshot
//   before the load, saying so and as of when, while the reload goes on (getForPage); a CSV
//   download waits for the reload and never gets stale rows.
// - the reload reads the rows as arrays from a statement on the raw SQLite connection and codes
//   them while they stream, instead of building one object per row and seven Sets afterwards.
// scripts/bench/web.ts measures warm and cold searches.
import type { Ledger } from '../spool/ledger/index.ts';
import { aggregatesSql, queryAggregates, type AggregateFilter, type AggregateRow } from '../jobs/jmanager/aggregates.ts';
import { withRawSqlite } from '../spool/ledger/sqlite-raw.ts';
import { AGG_KEY_COLUMNS } from '../jobs/terminal/rows.ts';
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
  /** when it was read from the ledger (a stale page says so) */
  readonly loadedAt = Date.now();

  constructor(
    readonly version: TableVersion,
    readonly from: string,
    readonly to: string,
    readonly length: number,
    private readonly dict: Record<KeyColumn, Dictionary>,
    private readonly sums: Record<SumColumn, Float64Array>,
  ) {}

  /** Builds a snapshot from rows in 71 order. */
  static fromRows(version: TableVersion, from: string, to: string, rows: Iterable<ArrayLike<string | number>>, columns: readonly string[]): Snapshot {
    const builder = new SnapshotBuilder(columns);
    for (const r of rows) builder.add(r);
    return builder.finish(version, from, to);
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

/** Codes rows as they come: per key column a Map of values seen, sorted at the end (codes remapped). */
class SnapshotBuilder {
  private readonly keyAt: number[];
  private readonly sumAt: number[];
  private readonly seen = KEY_COLUMNS.map(() => new Map<string, number>());
  private codes = KEY_COLUMNS.map(() => new Uint32Array(1024));
  private sums = AGG_SUM_COLUMNS.map(() => new Float64Array(1024));
  private n = 0;

  constructor(columns: readonly string[]) {
    this.keyAt = KEY_COLUMNS.map((k) => columns.indexOf(k));
    this.sumAt = AGG_SUM_COLUMNS.map((c) => columns.indexOf(c));
  }

  add(row: ArrayLike<string | number>): void {
    const i = this.n++;
    if (i === this.codes[0]!.length) {
      this.codes = this.codes.map((a) => { const b = new Uint32Array(a.length * 2); b.set(a); return b; });
      this.sums = this.sums.map((a) => { const b = new Float64Array(a.length * 2); b.set(a); return b; });
    }
    for (let k = 0; k < KEY_COLUMNS.length; k++) {
      const v = String(row[this.keyAt[k]!]);
      const seen = this.seen[k]!;
      let code = seen.get(v);
      if (code === undefined) seen.set(v, (code = seen.size));
      this.codes[k]![i] = code;
    }
    // PostgreSQL returns sums of bigints as strings
    for (let c = 0; c < AGG_SUM_COLUMNS.length; c++) this.sums[c]![i] = Number(row[this.sumAt[c]!]);
  }

  finish(version: TableVersion, from: string, to: string): Snapshot {
    const n = this.n;
    const dict = Object.fromEntries(KEY_COLUMNS.map((k, j) => {
      const firstSeen = [...this.seen[j]!.keys()];
      const values = [...firstSeen].sort();
      const index = new Map(values.map((v, i) => [v, i]));
      const remap = Uint32Array.from(firstSeen, (v) => index.get(v)!);
      const codes = this.codes[j]!.subarray(0, n);
      for (let i = 0; i < n; i++) codes[i] = remap[codes[i]!]!;
      return [k, { values, codes, index }];
    })) as Record<KeyColumn, Dictionary>;
    const sums = Object.fromEntries(AGG_SUM_COLUMNS.map((c, j) => [c, this.sums[j]!.subarray(0, n)])) as Record<SumColumn, Float64Array>;
    return new Snapshot(version, from, to, n, dict, sums);
  }
}

/** The aggregates table's lowest and highest row ids: a load raises the highest, a purge the lowest. */
export interface TableVersion {
  lo: number;
  hi: number;
}

async function tableVersion(ledger: Ledger): Promise<TableVersion> {
  // Two queries: SQLite answers a lone min() or max() from the index, but not both in one.
  const lo = (await ledger.db('jm_aggregates').min({ v: 'id' }).first()) as { v: unknown } | undefined;
  const hi = (await ledger.db('jm_aggregates').max({ v: 'id' }).first()) as { v: unknown } | undefined;
  return { lo: Number(lo?.v ?? 0), hi: Number(hi?.v ?? 0) };
}

/** Whether any row added after `since` (up to `upTo`) is one of these merchants': a scan of the new ids only. */
async function addedFor(ledger: Ledger, merchantNos: readonly string[], since: number, upTo: number): Promise<boolean> {
  const hit = await ledger.db('jm_aggregates').where('id', '>', since).andWhere('id', '<=', upTo).whereIn('merchant_no', [...merchantNos]).first('id');
  return Boolean(hit);
}

async function loadSnapshot(ledger: Ledger, version: TableVersion, filter: AggregateFilter): Promise<Snapshot> {
  if (ledger.dialect !== 'sqlite' || filter.merchantNos.length === 0) {
    const rows = await queryAggregates(ledger, filter);
    const columns = [...AGG_KEY_COLUMNS, ...AGG_SUM_COLUMNS];
    return Snapshot.fromRows(version, filter.from, filter.to, rows.map((r) => columns.map((c) => r[c])), columns);
  }
  const { sql, bindings, columns } = aggregatesSql(ledger, filter);
  return withRawSqlite(ledger, (conn) => {
    const stmt = conn.prepare(sql) as ReturnType<typeof conn.prepare> & { raw(on: boolean): unknown };
    stmt.raw(true); // arrays, not an object per row
    return Snapshot.fromRows(version, filter.from, filter.to, stmt.iterate(...bindings) as Iterable<(string | number)[]>, columns);
  });
}

interface Wanted {
  merchantNos: readonly string[];
  from: string;
  to: string;
}

export class JmanagerSnapshots {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly wanted = new Map<string, Wanted>();
  private readonly loading = new Map<string, Promise<Snapshot>>();

  constructor(
    private readonly ledger: Ledger,
    private readonly maxHeadOffices = 16,
  ) {}

  /** The snapshot of `partnerId` for the window [from, to], loaded (or reloaded) when needed. */
  async get(partnerId: string, merchantNos: readonly string[], from: string, to: string): Promise<Snapshot> {
    const { current, version } = await this.check(partnerId, merchantNos, from, to);
    return current ?? this.load(partnerId, merchantNos, from, to, version);
  }

  /**
   * For pages, which must answer at once: the current snapshot or, when this head office's own
   * new rows are not in it yet, the one before them, marked stale (the page says as of when); the
   * caller then starts the reload with get() once the page is sent. A download (CSV) waits for the
   * current one: get().
   */
  async getForPage(partnerId: string, merchantNos: readonly string[], from: string, to: string): Promise<{ snapshot: Snapshot; stale: boolean }> {
    const { current, version } = await this.check(partnerId, merchantNos, from, to);
    if (current) return { snapshot: current, stale: false };
    const have = this.snapshots.get(partnerId);
    if (!have || have.from !== from || have.to !== to) return { snapshot: await this.load(partnerId, merchantNos, from, to, version), stale: false };
    // The caller starts the reload (get()) once its page is sent: on SQLite the load runs on this
    // thread without a break, and would hold the page back.
    return { snapshot: have, stale: true };
  }

  /** The cached snapshot when it is still current, and the table's version either way. */
  private async check(partnerId: string, merchantNos: readonly string[], from: string, to: string): Promise<{ current?: Snapshot; version: TableVersion }> {
    const version = await tableVersion(this.ledger);
    const have = this.snapshots.get(partnerId);
    if (have && have.from === from && have.to === to && have.version.lo === version.lo) {
      if (have.version.hi === version.hi) return { current: this.use(partnerId, have), version };
      if (version.hi > have.version.hi && !(await addedFor(this.ledger, merchantNos, have.version.hi, version.hi))) {
        have.version.hi = version.hi; // nothing of this head office was added: still current
        return { current: this.use(partnerId, have), version };
      }
    }
    return { version };
  }

  /** Loads a snapshot at `version`, once however many ask at the same time. */
  private load(partnerId: string, merchantNos: readonly string[], from: string, to: string, version: TableVersion): Promise<Snapshot> {
    const key = `${partnerId}|${version.lo}-${version.hi}|${from}|${to}`;
    let pending = this.loading.get(key);
    if (!pending) {
      pending = loadSnapshot(this.ledger, { ...version }, { merchantNos, from, to })
        .then((snap) => {
          this.wanted.set(partnerId, { merchantNos, from, to });
          return this.use(partnerId, snap);
        })
        .finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  private use(partnerId: string, snap: Snapshot): Snapshot {
    this.snapshots.delete(partnerId); // most recently used last
    this.snapshots.set(partnerId, snap);
    while (this.snapshots.size > this.maxHeadOffices) {
      const oldest = this.snapshots.keys().next().value!;
      this.snapshots.delete(oldest);
      this.wanted.delete(oldest);
    }
    return snap;
  }

  /**
   * Brings every cached snapshot up to date (one at a time, in the background of the listener):
   * after a head office's 81 load its next search finds the reloaded snapshot ready. `window`
   * gives today's search window, which moves at midnight.
   */
  async refresh(window: () => { from: string; to: string }): Promise<void> {
    const { from, to } = window();
    for (const [partnerId, w] of [...this.wanted]) await this.get(partnerId, w.merchantNos, from, to);
  }

  /** Loads the snapshots of these head offices (at listener start), most important first, up to the cache size. */
  async warm(headOffices: { id: string; merchantNos: readonly string[] }[], from: string, to: string): Promise<void> {
    for (const p of headOffices.slice(0, this.maxHeadOffices)) await this.get(p.id, p.merchantNos, from, to);
  }
}
