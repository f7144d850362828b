// Opens the ledger: SQLite (embedded default) or PostgreSQL, the same schema on both.
import knexFactory, { type Knex } from 'knex';
import path from 'node:path';
import { open } from 'node:fs/promises';
import { SharedSyncs } from '../atomic.ts';
import { redactCardNumbers } from '../../formats/card.ts';
import { prepareSqliteFile } from './file-mode.ts';
import { migrateToLatest } from './migrations.ts';
import { CachingBetterSqlite3Client } from './sqlite-client.ts';
import { deferSync, type RawSqlite } from './sqlite-raw.ts';

export type Dialect = 'sqlite' | 'postgres';

export interface Ledger {
  readonly db: Knex;
  readonly dialect: Dialect;
  /** SQLite: the database file (its write-ahead log is this + '-wal'); undefined in memory and on PostgreSQL. */
  readonly sqliteFile?: string;
  /** SQLite: the connection's own synchronous setting (FULL unless the URL says normal). */
  readonly synchronous?: 'full' | 'normal';
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

/** Where the ledger's driver messages go: a logger of pino's shape (the centre's, which redacts). */
export interface LedgerLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/**
 * A driver message as it may be logged: its first line only (knex appends the whole stack of a
 * refused connection, every retry), no password of a connection URL, no whole card number.
 */
export function ledgerMessage(message: unknown): string {
  const text = message instanceof Error ? message.message : typeof message === 'string' ? message : JSON.stringify(message);
  const first = (text ?? '').split('\n')[0]!.slice(0, 500);
  return redactCardNumbers(first.replace(/(\/\/[^:/@\s]*:)[^@\s]*@/g, '$1***@'));
}

/**
 * knex's own log (connection errors while it retries, deprecations), which by default goes to
 * console.log with a stack trace: through our logger instead, one redacted line each; without a
 * logger, one line on stderr.
 */
function knexLog(log: LedgerLog | undefined): Knex.Config['log'] {
  const line = (level: 'warn' | 'error' | 'debug') => (message: unknown) => {
    const text = ledgerMessage(message);
    if (log) log[level]({ event: 'ledger.driver', driver: text }, `ledger: ${text}`);
    else if (level !== 'debug') process.stderr.write(`tsunagi ledger ${level}: ${text}\n`);
  };
  return { warn: line('warn'), error: line('error'), deprecate: line('warn'), debug: line('debug') };
}

export async function openLedger(url: string, options: { baseDir?: string; migrate?: boolean; log?: LedgerLog } = {}): Promise<Ledger> {
  const { dialect, target, synchronous = 'full' } = parseLedgerUrl(url, options.baseDir);
  let db: Knex;
  if (dialect === 'sqlite') {
    if (target !== ':memory:') prepareSqliteFile(target);
    db = knexFactory({
      client: CachingBetterSqlite3Client as unknown as typeof Knex.Client,
      connection: { filename: target },
      useNullAsDefault: true,
      log: knexLog(options.log),
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
    db = knexFactory({ client: 'pg', connection: target, pool: { min: 0, max: 10 }, log: knexLog(options.log) });
  }
  const ledger: Ledger = { db, dialect, sqliteFile: dialect === 'sqlite' && target !== ':memory:' ? target : undefined, synchronous: dialect === 'sqlite' ? synchronous : undefined, close: () => closeLedgerPools(ledger) };
  if (options.migrate !== false) await migrateToLatest(ledger);
  return ledger;
}

export interface WriteOptions {
  /**
   * A lazy commit is not flushed to disk when it returns (SQLite: this commit at
   * synchronous=NORMAL): a process crash loses nothing, a power loss may lose it and the lazy
   * commits just before it, never a commit after them (the log is replayed as a prefix). Use it
   * only where nothing outside the ledger depends on the commit before the next flushLedger (or a
   * commit that is not lazy): see docs/notes/issue-15.md. On PostgreSQL every commit stays
   * synchronous: see flushLedger.
   */
  lazy?: boolean;
  /**
   * Stronger than lazy: losing this commit altogether, with nothing flushed after it, leaves the
   * state a kill just before it leaves, which recovery already handles (a path update after the
   * file moved to the archive). On PostgreSQL it commits without waiting for the log flush
   * (synchronous_commit off, on connections of its own): a PostgreSQL stopped with -m immediate
   * may lose it, and only then. On SQLite it is a lazy commit.
   */
  losable?: boolean;
}

/**
 * A transaction that writes. On SQLite it takes the write lock with its first statement, so a
 * second writer waits (busy_timeout) instead of failing at once with SQLITE_BUSY when it would
 * otherwise upgrade a read lock; schema_migrations exists before anything else does.
 */
export async function writeTransaction<T>(ledger: Ledger, fn: (trx: Knex.Transaction) => Promise<T>, options: WriteOptions = {}): Promise<T> {
  if ((options.lazy || options.losable) && ledger.dialect === 'sqlite' && ledger.synchronous !== 'normal') return lazySqliteTransaction(ledger, fn);
  if (options.losable && ledger.dialect === 'postgres') return asyncCommitDb(ledger).transaction(fn);
  return ledger.db.transaction(async (trx) => {
    if (ledger.dialect === 'sqlite') await trx.raw('update schema_migrations set name = name where 0');
    return fn(trx);
  });
}

/**
 * One statement that writes, atomic on its own: on PostgreSQL it runs as it is, without BEGIN and
 * COMMIT around it (one round trip instead of three; `losable`: on the async-commit connections);
 * on SQLite as writeTransaction, for its write lock and lazy commits.
 */
export async function writeStatement<T>(ledger: Ledger, fn: (db: Knex) => Promise<T>, options: WriteOptions = {}): Promise<T> {
  if (ledger.dialect === 'postgres') return fn(options.losable ? asyncCommitDb(ledger) : ledger.db);
  return writeTransaction(ledger, fn, options);
}

/** PostgreSQL: a small pool beside the ledger's whose commits do not wait for the log flush (losable commits only). */
const asyncCommitPools = new WeakMap<Ledger, Knex>();

function asyncCommitDb(ledger: Ledger): Knex {
  let db = asyncCommitPools.get(ledger);
  if (!db) {
    const config = ledger.db.client.config as Knex.Config;
    const connection = typeof config.connection === 'string' ? { connectionString: config.connection } : (config.connection as object);
    db = knexFactory({ ...config, connection: { ...connection, options: '-c synchronous_commit=off' }, pool: { min: 0, max: 2 } });
    asyncCommitPools.set(ledger, db);
  }
  return db;
}

/** Closes the ledger's pools (the async-commit one too, when it was opened). */
async function closeLedgerPools(ledger: Ledger): Promise<void> {
  const asyncDb = asyncCommitPools.get(ledger);
  asyncCommitPools.delete(ledger);
  await Promise.all([ledger.db.destroy(), asyncDb?.destroy()]);
}

interface KnexPool {
  acquireConnection(): Promise<RawSqlite>;
  releaseConnection(conn: RawSqlite): Promise<void>;
}

/**
 * SQLite decides whether to sync the log when it commits, from the setting in force when the
 * transaction began (a PRAGMA inside it has no effect): so take this process's one connection,
 * set NORMAL, run the transaction on it, and set it back before anyone else gets it.
 */
async function lazySqliteTransaction<T>(ledger: Ledger, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  const pool = (ledger.db as unknown as { client: KnexPool }).client;
  const conn = await pool.acquireConnection();
  const restore = deferSync(conn);
  try {
    return await ledger.db.transaction(
      async (trx) => {
        await trx.raw('update schema_migrations set name = name where 0');
        return fn(trx);
      },
      { connection: conn } as Knex.TransactionConfig,
    );
  } finally {
    restore();
    await pool.releaseConnection(conn);
  }
}

/**
 * Makes every commit so far durable, lazy ones included, whichever connection or process made
 * them: SQLite: fsync of the write-ahead log (the one file every connection appends its commits
 * to; it runs without the write lock, so other writers go on meanwhile). PostgreSQL: nothing to
 * do, its commits are never lazy. (They were once `synchronous_commit = off`, flushed by a
 * `select txid_current()`; but PostgreSQL flushes the log at a commit only when that transaction
 * wrote to the log itself, which one that only takes an xid does not. A PostgreSQL killed with -m
 * immediate lost such "flushed" commits, a push journal among them, and a file was delivered
 * twice: test/jobs/postgres-restart.test.ts.)
 */
export function flushLedger(ledger: Ledger): Promise<void> {
  if (ledger.dialect === 'postgres' || !ledger.sqliteFile) return Promise.resolve();
  // Group flush: calls that come while an fsync runs share the next one, which starts when it
  // ends. Concurrent deliveries of one process so pay for one fsync instead of one each.
  return logSyncs.sync(ledger.sqliteFile);
}

const logSyncs = new SharedSyncs(syncLog);

async function syncLog(sqliteFile: string): Promise<void> {
  let fh;
  try {
    fh = await open(`${sqliteFile}-wal`, 'r');
  } catch (err) {
    // No log: the last connection checkpointed it into the database file (synced) and removed it.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface SharedCommitOptions {
  /** PostgreSQL: `fn` writes more than one statement and needs a transaction (by default it is one statement, atomic on its own). */
  transaction?: boolean;
  /** The commit need not be durable when this resolves (as WriteOptions.losable): SQLite does not wait for a flush for it. */
  losable?: boolean;
}

interface SharedWrite {
  fn: (trx: Knex) => Promise<unknown>;
  durable: boolean;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

const sharedGroups = new WeakMap<Ledger, { queue: SharedWrite[]; writing: boolean }>();

/**
 * A durable write that shares its transaction and its flush with the others that come while one
 * is being written (group commit). On SQLite, concurrent deliveries and a batch of scanned files
 * each paid a write transaction and an fsync of the log per step; now the writes queued
 * meanwhile go into the next transaction, each in a savepoint of its own (one that throws is
 * rolled back alone and rejects alone), and resolve after one flush. `fn` must write through the
 * Knex it gets (the ledger's one connection is the group's meanwhile) and must not call another
 * write. On PostgreSQL nothing is shared: its commits are group-committed by the server, so `fn`
 * runs as writeStatement (or writeTransaction with `transaction`).
 */
export function sharedCommit<T>(ledger: Ledger, fn: (trx: Knex) => Promise<T>, options: SharedCommitOptions = {}): Promise<T> {
  if (ledger.dialect === 'postgres') return options.transaction ? writeTransaction(ledger, fn, { losable: options.losable }) : writeStatement(ledger, fn, { losable: options.losable });
  let group = sharedGroups.get(ledger);
  if (!group) sharedGroups.set(ledger, (group = { queue: [], writing: false }));
  const g = group;
  return new Promise<T>((resolve, reject) => {
    g.queue.push({ fn, durable: !options.losable, resolve: resolve as (value: unknown) => void, reject });
    if (!g.writing) {
      g.writing = true;
      // The next turn of the event loop: writes asked for in this one (a batch's) share the transaction.
      setImmediate(() => void writeSharedGroups(ledger, g));
    }
  });
}

async function writeSharedGroups(ledger: Ledger, g: { queue: SharedWrite[]; writing: boolean }): Promise<void> {
  while (g.queue.length > 0) {
    const batch = g.queue.splice(0);
    const outcomes: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = [];
    try {
      await writeTransaction(
        ledger,
        async (trx) => {
          if (batch.length === 1) return void outcomes.push({ ok: true, value: await batch[0]!.fn(trx) }); // fails the transaction when it throws
          for (const w of batch) {
            try {
              outcomes.push({ ok: true, value: await trx.transaction((savepoint) => w.fn(savepoint)) });
            } catch (err) {
              outcomes.push({ ok: false, err });
            }
          }
        },
        { lazy: true },
      );
    } catch (err) {
      for (const w of batch) w.reject(err);
      continue;
    }
    // The flush runs while the next batch is written (flushLedger starts a new fsync after the running one).
    const flushed = batch.some((w) => w.durable) ? flushLedger(ledger) : Promise.resolve();
    batch.forEach((w, i) => {
      const outcome = outcomes[i]!;
      if (!outcome.ok) return w.reject(outcome.err);
      if (!w.durable) return w.resolve(outcome.value);
      flushed.then(() => w.resolve(outcome.value), (err: unknown) => w.reject(err));
    });
  }
  g.writing = false;
}
