// Reconciliation 2, terminal vs sales, for one business date: every transaction of the 81 journal
// is matched (offline sales without an approval number too); every authorised one (approval
// number set) should be in a 31 the merchant sent (we see accepted 31 records
// as sent_records), matched on merchantNo + terminalId + slipNo + date. Only merchant numbers the
// journal covers that day are checked for "no terminal transaction": a merchant whose terminals
// the online centre does not serve would otherwise flood the report.
//
// Both sides are taken in key order and merge-joined: the sales side streamed (better-sqlite3
// iterators on the raw connection, keyset pages on PostgreSQL), the terminal side from the day's
// packed transactions (TerminalDay: key columns decoded, rows decoded one at a time) sorted here.
// Keys are compared in code point order, which is SQLite's BINARY and PostgreSQL's "C" order. The
// key is the trimmed merchant number and terminal id, and the slip number as stored; when some row
// of the day has a value whose trimming would reorder it (an edge byte that is a control, space or
// non-ASCII, or a null), the day is reconciled the original way, with both sides in memory.
import { withRawSqlite, type RawSqlite } from '../../spool/ledger/sqlite-raw.ts';
import type { Knex } from 'knex';
import type { Ledger } from '../../spool/ledger/index.ts';
import type { JobContext } from '../context.ts';
import type { Emit } from './discrepancy.ts';
import { hasTerminalTxns, readTerminalDay, type TerminalDay } from '../terminal/pack.ts';

interface TerminalSide { merchant_no: string; terminal_id: string; slip_no: string; txn_type: string; amount: number; approval_no: string; masked_card_no: string; file_id: string; record_no: number }
interface SalesSide { merchant_no: string; terminal_id: string; slip_no: string; txn_type: string; amount: number; approval_no: string; masked_card_no: string; file_id: string; source_file_id: string; centre_ref: string; card_company_code: string }
type KeyRow = { merchant_no: string; terminal_id: string; slip_no: string };

const SALES_COLUMNS = ['merchant_no', 'terminal_id', 'slip_no', 'txn_type', 'amount', 'approval_no', 'masked_card_no', 'file_id', 'source_file_id', 'centre_ref', 'card_company_code'];

const authorised = (approval: string) => approval.trim() !== '' && !/^0+$/.test(approval.trim());
const keyOf = (r: KeyRow) => `${r.merchant_no.trim()}\t${r.terminal_id.trim()}\t${r.slip_no}`;

/** The discrepancies of one key: a group of terminal rows and/or a group of sales rows. */
function makeJudge(date: string, emit: Emit) {
  const termKeys = (t: TerminalSide) => ({ merchantNo: t.merchant_no.trim(), terminalId: t.terminal_id.trim(), slipNo: t.slip_no, date, txnType: t.txn_type, fileId: t.file_id, recordNo: Number(t.record_no), maskedCardNo: t.masked_card_no });
  const saleKeys = (s: SalesSide) => ({ merchantNo: s.merchant_no.trim(), terminalId: (s.terminal_id ?? '').trim(), slipNo: s.slip_no, date, txnType: s.txn_type, cardCompanyCode: s.card_company_code, centreRef: String(s.centre_ref), fileId: s.file_id, sourceFileId: s.source_file_id, maskedCardNo: s.masked_card_no });
  return {
    terminal(ts: TerminalSide[], ss: SalesSide[] | undefined): void {
      const t = ts[0]!;
      for (const extra of ts.slice(1)) emit({ check: 2, category: 'duplicate', ...termKeys(extra), expected: 'one terminal transaction', found: `${ts.length} in the 81 journal`, detail: `first: ${t.file_id} record ${t.record_no}` });
      if (!ss) {
        // An offline sale under the floor limit has no approval number: it is matched when
        // submitted, but its absence from the 31s is not a 売上計上漏れ the terminal can prove.
        if (!authorised(t.approval_no)) return;
        emit({ check: 2, category: 'never submitted', ...termKeys(t), expected: `a 31 sale of ${Number(t.amount)}`, found: 'none', detail: `approval ${t.approval_no.trim()}` });
        return;
      }
      const s = ss[0]!;
      if (Number(s.amount) !== Number(t.amount) || s.txn_type !== t.txn_type)
        emit({ check: 2, category: 'amount mismatch', ...saleKeys(s), expected: `${t.txn_type} ${Number(t.amount)} (terminal)`, found: `${s.txn_type} ${Number(s.amount)} (31)`, detail: `terminal record ${t.file_id} #${t.record_no}` });
      if ((s.approval_no ?? '').trim() !== t.approval_no.trim())
        emit({ check: 2, category: 'approval-number mismatch', ...saleKeys(s), expected: t.approval_no.trim(), found: (s.approval_no ?? '').trim() || '(blank)', detail: `terminal record ${t.file_id} #${t.record_no}` });
    },
    sales(ss: SalesSide[], matched: boolean): void {
      for (const extra of ss.slice(1)) emit({ check: 2, category: 'duplicate', ...saleKeys(extra), expected: 'one 31 record', found: `${ss.length} submitted`, detail: `first: centreRef ${ss[0]!.centre_ref}` });
      if (!matched) {
        const s = ss[0]!;
        emit({ check: 2, category: 'no terminal transaction', ...saleKeys(s), expected: 'an authorised terminal transaction', found: 'none', detail: `31 amount ${Number(s.amount)}` });
      }
    },
  };
}

/** Code point order (UTF-8 byte order): UTF-16 order but for surrogates, which sort above the BMP. */
function compareText(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && x <= 0xdfff) x += 0x10000;
    if (y >= 0xd800 && y <= 0xdfff) y += 0x10000;
    return x - y;
  }
  return a.length - b.length;
}

function compareKeys(a: KeyRow, b: KeyRow): number {
  return compareText(a.merchant_no, b.merchant_no) || compareText(a.terminal_id, b.terminal_id) || compareText(a.slip_no, b.slip_no);
}

/** Rows of one side in key order, pulled one at a time. */
interface Cursor<T> {
  next(): Promise<T | undefined>;
}

function sqliteCursor<T>(conn: RawSqlite, table: string, columns: string[], dateColumn: string, date: string, tie: string): Cursor<T> & { close(): void } {
  const it = conn.prepare(`select ${columns.join(',')} from ${table} where ${dateColumn} = ? order by merchant_no, terminal_id, slip_no, ${tie}`).iterate(date) as IterableIterator<T>;
  let n = 0;
  return {
    async next() {
      // Let the report's writes and other work through now and then.
      if (++n % 20_000 === 0) await new Promise((r) => setImmediate(r));
      const r = it.next();
      return r.done ? undefined : r.value;
    },
    close() {
      it.return?.();
    },
  };
}

function postgresCursor<T extends KeyRow>(db: Knex, table: string, columns: string[], dateColumn: string, date: string, tie: string): Cursor<T> {
  const PAGE = 5000;
  let page: T[] = [];
  let at = 0;
  let last: T | undefined;
  let done = false;
  const c = (col: string) => `${col} collate "C"`;
  return {
    async next() {
      if (at === page.length) {
        if (done) return undefined;
        const q = db(table).where(dateColumn, date).select(columns).orderByRaw(`${c('merchant_no')}, ${c('terminal_id')}, ${c('slip_no')}, ${tie}`).limit(PAGE);
        if (last) q.whereRaw(`(${c('merchant_no')}, ${c('terminal_id')}, ${c('slip_no')}, ${tie}) > (?, ?, ?, ?)`, [last.merchant_no, last.terminal_id, last.slip_no, (last as Record<string, unknown>)[tie] as string]);
        page = (await q) as T[];
        at = 0;
        if (page.length < PAGE) done = true;
        if (page.length === 0) return undefined;
        last = page[page.length - 1];
      }
      return page[at++];
    },
  };
}

/** Reads groups of rows with the same key. */
class Grouper<T extends KeyRow> {
  private head: T | undefined;
  private started = false;

  constructor(private readonly cursor: Cursor<T>, private readonly keep: (r: T) => boolean) {}

  private async pull(): Promise<T | undefined> {
    for (;;) {
      const r = await this.cursor.next();
      if (!r || this.keep(r)) return r;
    }
  }

  async peek(): Promise<T | undefined> {
    if (!this.started) {
      this.started = true;
      this.head = await this.pull();
    }
    return this.head;
  }

  async group(): Promise<T[]> {
    const first = (await this.peek())!;
    const out = [first];
    for (;;) {
      const r = await this.pull();
      if (r && compareKeys(r, first) === 0) out.push(r);
      else {
        if (r && compareKeys(r, first) < 0) throw new Error(`reconciliation: ${keyOf(r)} came after ${keyOf(first)}: rows are not in key order`);
        this.head = r;
        return out;
      }
    }
  }
}

/**
 * The edge test of hasUnorderedKeys for one terminal value, as each database answered it when the
 * transactions were rows: SQLite's unicode('') is null (not odd), PostgreSQL's ascii('') is 0 (odd).
 */
function oddEdges(x: string, sqlite: boolean): boolean {
  if (x === '') return !sqlite;
  const first = x.charCodeAt(0);
  const last = x.charCodeAt(x.length - 1);
  return first <= 32 || first >= 127 || last <= 32 || last >= 127;
}

/** Whether any row of the day has a key value whose trimming could reorder it, or a null. */
async function hasUnorderedKeys(ledger: Ledger, date: string, day: TerminalDay): Promise<boolean> {
  const sqlite = ledger.dialect === 'sqlite';
  for (let i = 0; i < day.length; i++) if (oddEdges(day.merchantNos[i]!, sqlite) || oddEdges(day.terminalIds[i]!, sqlite)) return true;
  const code = (x: string, first: boolean) => (sqlite ? `unicode(substr(${x}, ${first ? 1 : -1}, 1))` : `ascii(${first ? 'left' : 'right'}(${x}, 1))`);
  const odd = (x: string) => `${code(x, true)} <= 32 or ${code(x, true)} >= 127 or ${code(x, false)} <= 32 or ${code(x, false)} >= 127`;
  const cond = `(${odd('merchant_no')} or ${odd('terminal_id')} or merchant_no is null or terminal_id is null or slip_no is null)`;
  const s = await ledger.db('sent_records').where('use_date', date).whereRaw(cond).first(ledger.db.raw('1 as x'));
  return Boolean(s);
}

/** Whether the day has any 81 terminal data: without it, the check cannot say anything. */
export async function hasTerminalData(ledger: Ledger, date: string): Promise<boolean> {
  return hasTerminalTxns(ledger, '=', date);
}

/** The day's transactions in key order, ties in load order (what ORDER BY key, id gave). */
function terminalCursor(day: TerminalDay): Cursor<TerminalSide> {
  const { merchantNos: m, terminalIds: t, slipNos: s } = day;
  const order = Array.from({ length: day.length }, (_, i) => i);
  // Without surrogates UTF-16 order is code point order, and the engine's own comparison is faster.
  const surrogate = (xs: string[]) => xs.some((x) => /[\ud800-\udfff]/.test(x));
  const native = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  const cmp = surrogate(m) || surrogate(t) || surrogate(s) ? compareText : native;
  order.sort((a, b) => cmp(m[a]!, m[b]!) || cmp(t[a]!, t[b]!) || cmp(s[a]!, s[b]!) || a - b);
  let at = 0;
  return {
    async next() {
      // Let the report's writes and other work through now and then.
      if (at % 20_000 === 19_999) await new Promise((r) => setImmediate(r));
      return at < order.length ? day.row(order[at++]!) : undefined;
    },
  };
}

export async function checkTerminalVsSales(ctx: JobContext, date: string, emit: Emit): Promise<void> {
  const { ledger } = ctx.centre;
  const day = await readTerminalDay(ledger, date);
  if (await hasUnorderedKeys(ledger, date, day)) return checkInMemory(ctx, date, day, emit);
  const covered = new Set(day.merchantNos.map((m) => m.trim()));
  const judge = makeJudge(date, emit);
  const merge = async (terminal: Cursor<TerminalSide>, sales: Cursor<SalesSide>) => {
    const ts = new Grouper(terminal, () => true);
    const ss = new Grouper(sales, (s) => covered.has(s.merchant_no.trim()));
    for (;;) {
      const t = await ts.peek();
      const s = await ss.peek();
      if (!t && !s) return;
      const c = !t ? 1 : !s ? -1 : compareKeys(t, s);
      if (c < 0) judge.terminal(await ts.group(), undefined);
      else if (c > 0) judge.sales(await ss.group(), false);
      else {
        const sg = await ss.group();
        judge.terminal(await ts.group(), sg);
        judge.sales(sg, true);
      }
    }
  };
  if (ledger.dialect === 'sqlite') {
    await withRawSqlite(ledger, async (conn) => {
      const sales = sqliteCursor<SalesSide>(conn, 'sent_records', SALES_COLUMNS, 'use_date', date, 'centre_ref');
      try {
        await merge(terminalCursor(day), sales);
      } finally {
        sales.close();
      }
    });
  } else {
    await merge(terminalCursor(day), postgresCursor<SalesSide>(ledger.db, 'sent_records', SALES_COLUMNS, 'use_date', date, 'centre_ref'));
  }
}

/** Groups rows by key; more than one row under a key is a duplicate on that side. */
function byKey<T extends KeyRow>(rows: T[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const r of rows) {
    const k = keyOf(r);
    const list = m.get(k);
    if (list) list.push(r);
    else m.set(k, [r]);
  }
  return m;
}

/** Both sides of the day in memory, matched by key (any values). */
async function checkInMemory(ctx: JobContext, date: string, day: TerminalDay, emit: Emit): Promise<void> {
  const { db } = ctx.centre.ledger;
  const terminal: TerminalSide[] = Array.from({ length: day.length }, (_, i) => day.row(i));
  const covered = new Set(terminal.map((t) => t.merchant_no.trim()));
  const sales = (await db('sent_records').where('use_date', date).select(SALES_COLUMNS)) as SalesSide[];
  const terminalByKey = byKey(terminal);
  const salesByKey = byKey(sales.filter((s) => covered.has(s.merchant_no.trim())));
  terminal.length = 0; // let the unfiltered rows go before the comparison allocates
  sales.length = 0;
  const judge = makeJudge(date, emit);
  for (const [key, ts] of terminalByKey) judge.terminal(ts, salesByKey.get(key));
  for (const [key, ss] of salesByKey) judge.sales(ss, terminalByKey.has(key));
}
