// Writing one 81 file's rows in one transaction, per dialect. SQLite: prepared multi-row inserts
// on the raw better-sqlite3 connection (knex costs more per row than the insert itself); a record
// whose bytes are plain text goes in as one latin1 string that SQLite cuts into the columns
// (TerminalRecordPlan.sqlExprs), which costs a fraction of decoding and binding ten fields. PostgreSQL:
// one statement per batch through json_populate_recordset (a single parameter, any batch size).
// The terminal_loads row goes in first: a concurrent loader of the same file collides on its key
// and rolls back, so a file is counted once however often it is retried.
import type { Knex } from 'knex';
import { decodeField } from '../../formats/index.ts';
import { isUniqueViolation, type Ledger } from '../../spool/ledger/index.ts';
import { acquireRawSqlite, ROWS_PER_STATEMENT, SqliteBatchInsert, type RawSqlite, type RawStatement } from '../../spool/ledger/sqlite-raw.ts';
import { AGG_COLUMNS, AGG_KEY_COLUMNS, TXN_COLUMNS, type AggRow, type TerminalAggregator, type TerminalRecordPlan, type TxnRow } from './rows.ts';

export interface TerminalSink {
  /** false when this file was loaded already (nothing is written then). */
  begin(): Promise<boolean>;
  /** A canonical data record as a terminal_txns row. Synchronous for SQLite; PostgreSQL buffers until flush(). */
  addRecord(buf: Buffer, off: number, recordNo: number, amount: number): void;
  flush(): Promise<void>;
  /** Writes the file's aggregates and its terminal_loads count, and commits. */
  finish(aggregator: TerminalAggregator, recordCount: number): Promise<void>;
  abort(): Promise<void>;
}

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

/**
 * terminal_txns rows from record bytes: per row the span as a latin1 string, record_no, amount and
 * the re-masked card number (null when the record's is already masked), in statements of
 * ROWS_PER_STATEMENT rows; SQLite cuts the text columns out of the span.
 */
class SqliteSpanInsert {
  private readonly many: RawStatement;
  private readonly one: RawStatement;
  private pending: unknown[] = [];
  private pendingRows = 0;

  constructor(conn: RawSqlite, private readonly plan: TerminalRecordPlan) {
    const exprs = plan.sqlExprs('column1', 'column4');
    const select = TXN_COLUMNS.map((c) => (c === 'file_id' ? sqlString(plan.fileId) : c === 'record_no' ? 'column2' : c === 'amount' ? 'column3' : exprs.get(c)!));
    const sql = (rows: number) => `insert into terminal_txns (${TXN_COLUMNS.join(',')}) select ${select.join(',')} from (values ${Array(rows).fill('(?,?,?,?)').join(',')})`;
    this.many = conn.prepare(sql(ROWS_PER_STATEMENT));
    this.one = conn.prepare(sql(1));
  }

  add(buf: Buffer, off: number, recordNo: number, amount: number): void {
    const { plan } = this;
    this.pending.push(buf.toString('latin1', off + plan.spanStart, off + plan.spanEnd), recordNo, amount, plan.remaskedCard(buf, off));
    if (++this.pendingRows === ROWS_PER_STATEMENT) {
      this.many.run(this.pending);
      this.pending = [];
      this.pendingRows = 0;
    }
  }

  end(): void {
    for (let r = 0; r < this.pendingRows; r++) this.one.run(...this.pending.slice(r * 4, r * 4 + 4));
    this.pending = [];
    this.pendingRows = 0;
  }
}

/**
 * jm_aggregates rows the same way: per distinct key its packed key bytes as one latin1 string that
 * SQLite cuts into the seven key columns, and the six sums. Binding 7 values instead of 15 (and
 * decoding no key in JS) makes these inserts about as cheap as the transaction rows', and a file
 * of the benchmark has nearly one distinct key per record. Keys that are not printable ASCII (or a
 * layout with non-N/C key fields) go in decoded, in their place in the order.
 */
function insertAggregates(conn: RawSqlite, fileId: string, aggregator: TerminalAggregator): number {
  const fallback = new SqliteBatchInsert(conn, 'jm_aggregates', AGG_COLUMNS);
  if (!aggregator.keysAsText) {
    const rows = aggregator.rows(fileId);
    for (const r of rows) fallback.add(r);
    fallback.end();
    return rows.length;
  }
  const packed = aggregator.packedKeyFields();
  const keyExprs = packed.map((d) => {
    const sub = `substr(column1, ${d.offset + 1}, ${d.length})`;
    return d.type === 'C' ? `rtrim(${sub}, ' ')` : sub;
  });
  const select = [sqlString(fileId), ...keyExprs, 'column2', 'column3', 'column4', 'column5', 'column6', 'column7'];
  if (select.length !== AGG_COLUMNS.length || AGG_KEY_COLUMNS.length !== packed.length) throw new Error('jm_aggregates columns and the aggregate key differ');
  const sql = (rows: number) => `insert into jm_aggregates (${AGG_COLUMNS.join(',')}) select ${select.join(',')} from (values ${Array(rows).fill('(?,?,?,?,?,?,?)').join(',')})`;
  const many = conn.prepare(sql(ROWS_PER_STATEMENT));
  const one = conn.prepare(sql(1));
  let pending: unknown[] = [];
  let pendingRows = 0;
  const endSpans = () => {
    for (let r = 0; r < pendingRows; r++) one.run(...pending.slice(r * 7, r * 7 + 7));
    pending = [];
    pendingRows = 0;
  };
  const decoded: AggRow = new Array(AGG_COLUMNS.length);
  let count = 0;
  aggregator.forEachEntry((keys, at, len, sums, sumAt) => {
    count++;
    let text = true;
    for (let i = at, e = at + len; i < e; i++) {
      const b = keys[i]!;
      if (b < 0x20 || b > 0x7e) { text = false; break; }
    }
    if (text) {
      pending.push(keys.toString('latin1', at, at + len), sums[sumAt], sums[sumAt + 1], sums[sumAt + 2], sums[sumAt + 3], sums[sumAt + 4], sums[sumAt + 5]);
      if (++pendingRows === ROWS_PER_STATEMENT) {
        many.run(pending);
        pending = [];
        pendingRows = 0;
      }
      return;
    }
    // Rows keep first-occurrence order (ids): what is pending goes in before a decoded row.
    endSpans();
    decoded[0] = fileId;
    for (let k = 0; k < packed.length; k++) decoded[1 + k] = decodeField(keys, at, packed[k]!);
    for (let i = 0; i < 6; i++) decoded[1 + packed.length + i] = sums[sumAt + i]!;
    fallback.add(decoded);
    fallback.end();
  });
  endSpans();
  return count;
}

class SqliteTerminalSink implements TerminalSink {
  private conn?: RawSqlite;
  private txns?: SqliteBatchInsert;
  private spans?: SqliteSpanInsert;
  private open = false;

  constructor(private readonly ledger: Ledger, private readonly plan: TerminalRecordPlan) {}

  private get fileId(): string {
    return this.plan.fileId;
  }

  private release?: () => Promise<void>;

  async begin(): Promise<boolean> {
    ({ conn: this.conn, release: this.release } = await acquireRawSqlite(this.ledger));
    try {
      this.conn.exec('begin immediate');
      this.open = true;
      this.conn.prepare('insert into terminal_loads (file_id, record_count, aggregate_rows, loaded_at) values (?, 0, 0, ?)').run(this.fileId, Date.now());
    } catch (err) {
      await this.abort();
      if (isUniqueViolation(err)) return false;
      throw err;
    }
    this.txns = new SqliteBatchInsert(this.conn, 'terminal_txns', TXN_COLUMNS);
    if (this.plan.bytesAsText) this.spans = new SqliteSpanInsert(this.conn, this.plan);
    return true;
  }

  addRecord(buf: Buffer, off: number, recordNo: number, amount: number): void {
    if (this.spans && this.plan.spanIsText(buf, off)) {
      this.spans.add(buf, off, recordNo, amount);
      return;
    }
    // Rows keep record order (ids): what is pending from the bytes goes in before a decoded row.
    this.spans?.end();
    this.txns!.add(this.plan.decodeRow(buf, off, recordNo, amount));
    this.txns!.end();
  }

  async flush(): Promise<void> {}

  async finish(aggregator: TerminalAggregator, recordCount: number): Promise<void> {
    const conn = this.conn!;
    try {
      this.spans?.end();
      this.txns!.end();
      const aggregateRows = insertAggregates(conn, this.fileId, aggregator);
      conn.prepare('update terminal_loads set record_count = ?, aggregate_rows = ? where file_id = ?').run(recordCount, aggregateRows, this.fileId);
      conn.exec('commit');
      this.open = false;
    } finally {
      await this.abort();
    }
  }

  async abort(): Promise<void> {
    if (!this.conn) return;
    if (this.open) {
      this.open = false;
      try { this.conn.exec('rollback'); } catch { /* no transaction left */ }
    }
    this.conn = undefined;
    await this.release?.();
  }
}

const PG_BATCH = 5000;

async function insertJsonRows(trx: Knex.Transaction, table: string, columns: readonly string[], rows: readonly (readonly unknown[])[]): Promise<void> {
  for (let i = 0; i < rows.length; i += PG_BATCH) {
    const objects = rows.slice(i, i + PG_BATCH).map((r) => Object.fromEntries(columns.map((c, j) => [c, r[j]])));
    const cols = columns.join(',');
    await trx.raw(`insert into ${table} (${cols}) select ${cols} from json_populate_recordset(null::${table}, ?::json)`, [JSON.stringify(objects)]);
  }
}

class PostgresTerminalSink implements TerminalSink {
  private trx?: Knex.Transaction;
  private buffer: TxnRow[] = [];

  constructor(private readonly ledger: Ledger, private readonly plan: TerminalRecordPlan) {}

  private get fileId(): string {
    return this.plan.fileId;
  }

  async begin(): Promise<boolean> {
    this.trx = await this.ledger.db.transaction();
    try {
      await this.trx('terminal_loads').insert({ file_id: this.fileId, record_count: 0, aggregate_rows: 0, loaded_at: Date.now() });
      return true;
    } catch (err) {
      await this.abort();
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  addRecord(buf: Buffer, off: number, recordNo: number, amount: number): void {
    this.buffer.push(this.plan.decodeRow(buf, off, recordNo, amount));
  }

  async flush(): Promise<void> {
    const rows = this.buffer;
    this.buffer = [];
    await insertJsonRows(this.trx!, 'terminal_txns', TXN_COLUMNS, rows);
  }

  async finish(aggregator: TerminalAggregator, recordCount: number): Promise<void> {
    const trx = this.trx!;
    const aggregates = aggregator.rows(this.fileId);
    try {
      await this.flush();
      await insertJsonRows(trx, 'jm_aggregates', AGG_COLUMNS, aggregates);
      await trx('terminal_loads').where({ file_id: this.fileId }).update({ record_count: recordCount, aggregate_rows: aggregates.length });
      await trx.commit();
      this.trx = undefined;
    } finally {
      await this.abort();
    }
  }

  async abort(): Promise<void> {
    const trx = this.trx;
    this.trx = undefined;
    if (trx && !trx.isCompleted()) await trx.rollback().catch(() => undefined);
  }
}

export function terminalSink(ledger: Ledger, plan: TerminalRecordPlan): TerminalSink {
  return ledger.dialect === 'sqlite' ? new SqliteTerminalSink(ledger, plan) : new PostgresTerminalSink(ledger, plan);
}
