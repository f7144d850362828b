// Writing one 81 file's rows in one transaction, per dialect. SQLite: prepared multi-row inserts
// on the raw better-sqlite3 connection (knex costs more per row than the insert itself). PostgreSQL:
// one statement per batch through json_populate_recordset (a single parameter, any batch size).
// The terminal_loads row goes in first: a concurrent loader of the same file collides on its key
// and rolls back, so a file is counted once however often it is retried.
import type { Knex } from 'knex';
import { isUniqueViolation, type Ledger } from '../../spool/ledger/index.ts';
import { AGG_COLUMNS, TXN_COLUMNS, type AggRow, type TxnRow } from './rows.ts';

export interface TerminalSink {
  /** false when this file was loaded already (nothing is written then). */
  begin(): Promise<boolean>;
  /** Synchronous for SQLite; PostgreSQL buffers until flush(). */
  addTxn(row: TxnRow): void;
  flush(): Promise<void>;
  finish(aggregates: AggRow[], recordCount: number): Promise<void>;
  abort(): Promise<void>;
}

/** Minimal surface of a better-sqlite3 connection that we use. */
interface SqliteConn {
  prepare(sql: string): { run(...params: unknown[]): unknown };
  exec(sql: string): void;
}

const ROWS_PER_STATEMENT = 64;

function insertSql(table: string, columns: readonly string[], rows: number): string {
  const one = `(${columns.map(() => '?').join(',')})`;
  return `insert into ${table} (${columns.join(',')}) values ${Array(rows).fill(one).join(',')}`;
}

/** Inserts rows in statements of ROWS_PER_STATEMENT, the rest one by one. */
class SqliteBatchInsert {
  private readonly many: { run(...p: unknown[]): unknown };
  private readonly one: { run(...p: unknown[]): unknown };
  private pending: unknown[] = [];
  private pendingRows = 0;

  constructor(conn: SqliteConn, table: string, private readonly columns: readonly string[]) {
    this.many = conn.prepare(insertSql(table, columns, ROWS_PER_STATEMENT));
    this.one = conn.prepare(insertSql(table, columns, 1));
  }

  add(row: readonly unknown[]): void {
    for (let i = 0; i < this.columns.length; i++) this.pending.push(row[i]);
    if (++this.pendingRows === ROWS_PER_STATEMENT) {
      this.many.run(...this.pending);
      this.pending = [];
      this.pendingRows = 0;
    }
  }

  end(): void {
    const n = this.columns.length;
    for (let r = 0; r < this.pendingRows; r++) this.one.run(...this.pending.slice(r * n, r * n + n));
    this.pending = [];
    this.pendingRows = 0;
  }
}

class SqliteTerminalSink implements TerminalSink {
  private conn?: SqliteConn;
  private txns?: SqliteBatchInsert;
  private open = false;

  constructor(private readonly ledger: Ledger, private readonly fileId: string) {}

  private get client(): { acquireConnection(): Promise<SqliteConn>; releaseConnection(c: SqliteConn): Promise<void> } {
    return (this.ledger.db as unknown as { client: never }).client;
  }

  async begin(): Promise<boolean> {
    this.conn = await this.client.acquireConnection();
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
    return true;
  }

  addTxn(row: TxnRow): void {
    this.txns!.add(row);
  }

  async flush(): Promise<void> {}

  async finish(aggregates: AggRow[], recordCount: number): Promise<void> {
    const conn = this.conn!;
    try {
      this.txns!.end();
      const aggs = new SqliteBatchInsert(conn, 'jm_aggregates', AGG_COLUMNS);
      for (const a of aggregates) aggs.add(a);
      aggs.end();
      conn.prepare('update terminal_loads set record_count = ?, aggregate_rows = ? where file_id = ?').run(recordCount, aggregates.length, this.fileId);
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
    const conn = this.conn;
    this.conn = undefined;
    await this.client.releaseConnection(conn);
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

  constructor(private readonly ledger: Ledger, private readonly fileId: string) {}

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

  addTxn(row: TxnRow): void {
    this.buffer.push(row);
  }

  async flush(): Promise<void> {
    const rows = this.buffer;
    this.buffer = [];
    await insertJsonRows(this.trx!, 'terminal_txns', TXN_COLUMNS, rows);
  }

  async finish(aggregates: AggRow[], recordCount: number): Promise<void> {
    const trx = this.trx!;
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

export function terminalSink(ledger: Ledger, fileId: string): TerminalSink {
  return ledger.dialect === 'sqlite' ? new SqliteTerminalSink(ledger, fileId) : new PostgresTerminalSink(ledger, fileId);
}
