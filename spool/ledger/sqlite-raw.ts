// The raw better-sqlite3 connection under knex, for the few bulk writes where knex costs more per
// row than the insert itself. The pool holds one connection: while it is taken, this process's
// other ledger queries wait, so take it only around synchronous work that issues no knex query.
import type { Ledger } from './db.ts';

export interface RawStatement {
  run(...params: unknown[]): unknown;
  iterate(...params: unknown[]): IterableIterator<unknown>;
  all(...params: unknown[]): unknown[];
  get(...params: unknown[]): unknown;
  /** rows as arrays of values rather than objects */
  raw(on?: boolean): RawStatement;
}

export interface RawSqlite {
  prepare(sql: string): RawStatement;
  exec(sql: string): void;
}

interface KnexClient {
  acquireConnection(): Promise<RawSqlite>;
  releaseConnection(conn: RawSqlite): Promise<void>;
}

export async function acquireRawSqlite(ledger: Ledger): Promise<{ conn: RawSqlite; release(): Promise<void> }> {
  if (ledger.dialect !== 'sqlite') throw new Error('acquireRawSqlite: the ledger is not SQLite');
  const client = (ledger.db as unknown as { client: KnexClient }).client;
  const conn = await client.acquireConnection();
  let released = false;
  return {
    conn,
    async release() {
      if (released) return;
      released = true;
      await client.releaseConnection(conn);
    },
  };
}

/** Runs `use` with the raw connection and gives it back afterwards, whatever happens. */
export async function withRawSqlite<T>(ledger: Ledger, use: (conn: RawSqlite) => Promise<T> | T): Promise<T> {
  const { conn, release } = await acquireRawSqlite(ledger);
  try {
    return await use(conn);
  } finally {
    await release();
  }
}

export const ROWS_PER_STATEMENT = 64;

export function insertSql(verb: string, table: string, columns: readonly string[], rows: number): string {
  const one = `(${columns.map(() => '?').join(',')})`;
  return `${verb} into ${table} (${columns.join(',')}) values ${Array(rows).fill(one).join(',')}`;
}

/** Multi-row prepared inserts: statements of 64 rows, the rest one by one. */
export class SqliteBatchInsert {
  private readonly many: RawStatement;
  private readonly one: RawStatement;
  private pending: unknown[] = [];
  private pendingRows = 0;

  constructor(
    conn: RawSqlite,
    table: string,
    private readonly columns: readonly string[],
    verb: 'insert' | 'insert or ignore' = 'insert',
  ) {
    this.many = conn.prepare(insertSql(verb, table, columns, ROWS_PER_STATEMENT));
    this.one = conn.prepare(insertSql(verb, table, columns, 1));
  }

  add(row: readonly unknown[]): void {
    for (let i = 0; i < this.columns.length; i++) this.pending.push(row[i]);
    if (++this.pendingRows === ROWS_PER_STATEMENT) {
      this.many.run(this.pending); // an array binds in order, without spreading 832 arguments
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

/**
 * Runs `use` with commits that are not synced to disk one by one (synchronous=NORMAL), then puts
 * the connection's setting back. For bulk rows that a retry writes again (idempotent inserts)
 * ahead of a commit that matters: the WAL is one append-only file, so the next FULL commit, such as
 * the one that publishes the job's output, syncs these rows too, in order, before it counts as
 * done. A crash of the process loses nothing (the rows are in the WAL); a power cut before that
 * commit can lose them, and the retry writes them again. Nothing else may use the connection
 * meanwhile: take it with withRawSqlite and keep `use` synchronous.
 */
export function withDeferredSync<T>(conn: RawSqlite, use: () => T): T {
  const restore = deferSync(conn);
  try {
    return use();
  } finally {
    restore();
  }
}

const statements = new WeakMap<RawSqlite, Map<string, RawStatement>>();

/**
 * The connection's prepared statement for `sql`, prepared once: a statement holds native memory
 * that V8 does not see, so statements prepared per batch pile up until a GC frees them.
 */
export function preparedOnce(conn: RawSqlite, sql: string): RawStatement {
  let byText = statements.get(conn);
  if (!byText) statements.set(conn, (byText = new Map()));
  let stmt = byText.get(sql);
  if (!stmt) byText.set(sql, (stmt = conn.prepare(sql)));
  return stmt;
}

/** Sets the connection to synchronous=NORMAL until the function it returns puts it back. */
export function deferSync(conn: RawSqlite): () => void {
  const before = Number((preparedOnce(conn, 'pragma synchronous').get() as { synchronous: number }).synchronous);
  if (before <= 1) return () => undefined;
  conn.exec('pragma synchronous = NORMAL');
  return () => conn.exec(`pragma synchronous = ${before}`);
}

const IN_LIST = 500;

/**
 * The rows of `select` (a statement ending `... where <conditions> and <key column>`) whose key is
 * one of `keys` (distinct, in any order). One range scan over the key's index (`between` the least
 * and the greatest key) fetches them when they are dense there, the usual case of a file in key
 * order; when the range holds more than twice as many rows it falls back to IN lists. Rows outside
 * `keys` may come back. SQLite compares keys in binary order, as a JS string comparison of these
 * ASCII-or-kana keys does.
 */
export function selectByKeysRaw(conn: RawSqlite, select: string, whereArgs: readonly unknown[], keys: readonly string[], arrays: boolean): unknown[] {
  if (keys.length === 0) return [];
  const prepare = (sql: string) => preparedOnce(conn, sql).raw(arrays);
  let lo = keys[0]!, hi = keys[0]!;
  for (const k of keys) {
    if (k < lo) lo = k;
    if (k > hi) hi = k;
  }
  const limit = keys.length * 2 + 1;
  const ranged = prepare(`${select} between ? and ? limit ?`).all(...whereArgs, lo, hi, limit);
  if (ranged.length < limit) return ranged;
  const out: unknown[] = [];
  for (let i = 0; i < keys.length; i += IN_LIST) {
    const batch = keys.slice(i, i + IN_LIST);
    for (const r of prepare(`${select} in (${batch.map(() => '?').join(',')})`).all(...whereArgs, ...batch)) out.push(r);
  }
  return out;
}
