// Writing one 81 file in one transaction, per dialect: its transactions as packed parts
// (terminal_batches, see pack.ts) and its aggregates as rows. SQLite: on the raw better-sqlite3
// connection, parts as they fill, aggregates in prepared multi-row inserts (knex costs more per row
// than the insert itself). PostgreSQL: parts through knex at each flush, aggregates in one
// statement per batch through json_populate_recordset (a single parameter, any batch size).
// The terminal_loads row goes in first: a concurrent loader of the same file collides on its key
// and rolls back, so a file is counted once however often it is retried.
import type { Knex } from 'knex';
import { decodeField, type Layout } from '../../formats/index.ts';
import { isUniqueViolation, type Ledger } from '../../spool/ledger/index.ts';
import { acquireRawSqlite, insertSql, ROWS_PER_STATEMENT, SqliteBatchInsert, type RawSqlite } from '../../spool/ledger/sqlite-raw.ts';
import { PART_COLUMNS, TerminalPacker, type TerminalPart } from './pack.ts';
import { AGG_COLUMNS, AGG_KEY_COLUMNS, type AggRow, type TerminalAggregator } from './rows.ts';

export interface TerminalSink {
  /** false when this file was loaded already (nothing is written then). */
  begin(): Promise<boolean>;
  /** A canonical data record, packed. Synchronous; a part is written as it fills (SQLite) or at the next flush() (PostgreSQL). */
  addRecord(buf: Buffer, off: number, recordNo: number, amount: number): void;
  flush(): Promise<void>;
  /** Writes the file's aggregates and its terminal_loads count, and commits. */
  finish(aggregator: TerminalAggregator, recordCount: number): Promise<void>;
  abort(): Promise<void>;
}

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

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

const partValues = (p: TerminalPart) => PART_COLUMNS.map((c) => p[c]);

class SqliteTerminalSink implements TerminalSink {
  private conn?: RawSqlite;
  private packer?: TerminalPacker;
  private open = false;
  private release?: () => Promise<void>;

  constructor(private readonly ledger: Ledger, private readonly layout: Layout, private readonly fileId: string) {}

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
    const insertPart = this.conn.prepare(insertSql('insert', 'terminal_batches', PART_COLUMNS, 1));
    this.packer = new TerminalPacker(this.layout, this.fileId, (p) => insertPart.run(partValues(p)));
    return true;
  }

  addRecord(buf: Buffer, off: number, recordNo: number, amount: number): void {
    this.packer!.add(buf, off, recordNo, amount);
  }

  async flush(): Promise<void> {}

  async finish(aggregator: TerminalAggregator, recordCount: number): Promise<void> {
    const conn = this.conn!;
    try {
      this.packer!.finish();
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
  private parts: TerminalPart[] = [];
  private readonly packer: TerminalPacker;

  constructor(private readonly ledger: Ledger, layout: Layout, private readonly fileId: string) {
    this.packer = new TerminalPacker(layout, fileId, (p) => this.parts.push(p));
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
    this.packer.add(buf, off, recordNo, amount);
  }

  async flush(): Promise<void> {
    const parts = this.parts;
    this.parts = [];
    for (const p of parts) await this.trx!('terminal_batches').insert(p);
  }

  async finish(aggregator: TerminalAggregator, recordCount: number): Promise<void> {
    const trx = this.trx!;
    const aggregates = aggregator.rows(this.fileId);
    try {
      this.packer.finish();
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

export function terminalSink(ledger: Ledger, layout: Layout, fileId: string): TerminalSink {
  return ledger.dialect === 'sqlite' ? new SqliteTerminalSink(ledger, layout, fileId) : new PostgresTerminalSink(ledger, layout, fileId);
}
