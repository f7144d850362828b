// Fresh ledgers for tests: a SQLite file in a temp folder, and a new PostgreSQL database
// on the machine's server (trust auth), dropped afterwards.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import knexFactory from 'knex';
import { openLedger, type Ledger } from '../../spool/ledger/index.ts';

export const PG_ADMIN_URL = process.env.TSUNAGI_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestLedger {
  ledger: Ledger;
  url: string;
  dispose(): Promise<void>;
}

export async function sqliteLedger(): Promise<TestLedger> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-ledger-'));
  const url = `sqlite:${path.join(dir, 'ledger.db')}`;
  const ledger = await openLedger(url);
  return {
    ledger,
    url,
    async dispose() {
      await ledger.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A new empty database on the test PostgreSQL server (for a ledger a child process opens), dropped by dispose. */
export async function freshPostgresDatabase(): Promise<{ url: string; dispose(): Promise<void> }> {
  const name = `tsunagi_t_${randomBytes(6).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL });
  await admin.raw(`create database ${name}`);
  return {
    url: PG_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`),
    async dispose() {
      await admin.raw(`drop database if exists ${name} with (force)`);
      await admin.destroy();
    },
  };
}

export async function postgresLedger(): Promise<TestLedger> {
  const db = await freshPostgresDatabase();
  const ledger = await openLedger(db.url);
  return {
    ledger,
    url: db.url,
    async dispose() {
      await ledger.close();
      await db.dispose();
    },
  };
}

export const LEDGER_KINDS: Array<[string, () => Promise<TestLedger>]> = [
  ['sqlite', sqliteLedger],
  ['postgres', postgresLedger],
];

export type LedgerKind = 'sqlite' | 'postgres';

/**
 * The ledgers a long crash or restart test runs on. Running each on both would cost the suite
 * minutes, so by default each file runs on one, rotating by day: (days since 1970 + the file's own
 * `offset`) % 2. Files with different offsets cover both ledgers in every run of the suite, and each
 * file covers both on consecutive days. TSUNAGI_CRASH_LEDGERS=both (or sqlite, postgres) overrides.
 */
export function crashLedgerKinds(offset: number, now = Date.now()): LedgerKind[] {
  const chosen = process.env.TSUNAGI_CRASH_LEDGERS;
  if (chosen === 'both') return ['sqlite', 'postgres'];
  if (chosen === 'sqlite' || chosen === 'postgres') return [chosen];
  if (chosen) throw new Error(`TSUNAGI_CRASH_LEDGERS is both, sqlite or postgres, not '${chosen}'`);
  return [(Math.floor(now / 86_400_000) + offset) % 2 === 0 ? 'sqlite' : 'postgres'];
}

/** The ledger URL a crash test's centre uses for `kind` (undefined: the test's own SQLite file), and its clean-up. */
export async function crashLedger(kind: LedgerKind): Promise<{ url: string | undefined; dispose(): Promise<void> }> {
  if (kind === 'sqlite') return { url: undefined, dispose: async () => {} };
  return freshPostgresDatabase();
}
