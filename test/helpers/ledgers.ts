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

export async function postgresLedger(): Promise<TestLedger> {
  const name = `tsunagi_t_${randomBytes(6).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL });
  await admin.raw(`create database ${name}`);
  const url = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  const ledger = await openLedger(url);
  return {
    ledger,
    url,
    async dispose() {
      await ledger.close();
      await admin.raw(`drop database if exists ${name} with (force)`);
      await admin.destroy();
    },
  };
}

export const LEDGER_KINDS: Array<[string, () => Promise<TestLedger>]> = [
  ['sqlite', sqliteLedger],
  ['postgres', postgresLedger],
];
