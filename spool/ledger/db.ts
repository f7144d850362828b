// Opens the ledger: SQLite (embedded default) or PostgreSQL, the same schema on both.
import knexFactory, { type Knex } from 'knex';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { migrateToLatest } from './migrations.ts';

export type Dialect = 'sqlite' | 'postgres';

export interface Ledger {
  readonly db: Knex;
  readonly dialect: Dialect;
  close(): Promise<void>;
}

/**
 * `sqlite:PATH` (relative to baseDir) or `postgres://...`. `sqlite:PATH?synchronous=normal` trades
 * the last commits before a power loss (never a process crash's) for commits without an fsync each.
 */
export function parseLedgerUrl(url: string, baseDir = process.cwd()): { dialect: Dialect; target: string; synchronous?: 'full' | 'normal' } {
  if (url.startsWith('sqlite:')) {
    const [file, query] = url.slice('sqlite:'.length).split('?', 2) as [string, string | undefined];
    if (!file) throw new Error(`ledger '${url}': expected sqlite:PATH`);
    const sync = query === undefined ? undefined : /^synchronous=(full|normal)$/i.exec(query)?.[1]?.toLowerCase();
    if (query !== undefined && !sync) throw new Error(`ledger '${url}': the only option is ?synchronous=full or ?synchronous=normal`);
    return { dialect: 'sqlite', target: file === ':memory:' ? file : path.resolve(baseDir, file), synchronous: sync as 'full' | 'normal' | undefined };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return { dialect: 'postgres', target: url };
  throw new Error(`ledger '${url}': expected sqlite:PATH or a postgres:// URL`);
}

export async function openLedger(url: string, options: { baseDir?: string; migrate?: boolean } = {}): Promise<Ledger> {
  const { dialect, target, synchronous = 'full' } = parseLedgerUrl(url, options.baseDir);
  let db: Knex;
  if (dialect === 'sqlite') {
    if (target !== ':memory:') mkdirSync(path.dirname(target), { recursive: true });
    db = knexFactory({
      client: 'better-sqlite3',
      connection: { filename: target },
      useNullAsDefault: true,
      pool: {
        min: 1,
        max: 1,
        afterCreate(conn: { pragma(s: string): unknown }, done: (err: Error | null, conn: unknown) => void) {
          // WAL lets readers (the CLI) run beside a writer; FULL makes a commit survive power loss.
          conn.pragma('journal_mode = WAL');
          conn.pragma(`synchronous = ${synchronous.toUpperCase()}`);
          conn.pragma('busy_timeout = 10000');
          conn.pragma('foreign_keys = ON');
          done(null, conn);
        },
      },
    });
  } else {
    db = knexFactory({ client: 'pg', connection: target, pool: { min: 0, max: 10 } });
  }
  const ledger: Ledger = { db, dialect, close: () => db.destroy() };
  if (options.migrate !== false) await migrateToLatest(ledger);
  return ledger;
}

/**
 * A transaction that writes. On SQLite it takes the write lock with its first statement, so a
 * second writer waits (busy_timeout) instead of failing at once with SQLITE_BUSY when it would
 * otherwise upgrade a read lock; schema_migrations exists before anything else does.
 */
export async function writeTransaction<T>(ledger: Ledger, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  return ledger.db.transaction(async (trx) => {
    if (ledger.dialect === 'sqlite') await trx.raw('update schema_migrations set name = name where 0');
    return fn(trx);
  });
}
