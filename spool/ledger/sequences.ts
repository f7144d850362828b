// Centre-wide counters (centreRef blocks, outbound fileSeq per partner and type), reserved atomically.
import type { Knex } from 'knex';
import { writeTransaction, type Ledger } from './db.ts';

async function reserveIn(trx: Knex.Transaction, dialect: Ledger['dialect'], name: string, count: number): Promise<bigint> {
  let end: bigint;
  if (dialect === 'postgres') {
    // One statement (one round trip): the row is made or advanced under its row lock.
    const { rows } = (await trx.raw('insert into sequences (name, value) values (?, ?) on conflict (name) do update set value = sequences.value + excluded.value returning value', [name, count])) as { rows: { value: string }[] };
    end = BigInt(rows[0]!.value);
  } else {
    await trx.raw('insert or ignore into sequences (name, value) values (?, 0)', [name]);
    const updated = await trx('sequences').where({ name }).increment('value', count).returning('value');
    end = BigInt((updated[0] as { value: string | number }).value);
  }
  return end - BigInt(count) + 1n;
}

function checkCount(name: string, count: number): void {
  if (!Number.isInteger(count) || count < 1) throw new Error(`reserveSequence(${name}): count must be a positive integer`);
}

/**
 * Reserves `count` consecutive values of the named sequence and returns the first.
 * Runs in a transaction with a row lock (PostgreSQL) or the database write lock (SQLite).
 */
export async function reserveSequence(ledger: Ledger, name: string, count: number): Promise<bigint> {
  checkCount(name, count);
  return writeTransaction(ledger, (trx) => reserveIn(trx, ledger.dialect, name, count));
}

/**
 * Reserves a block once per `key`: a retry of the same work gets the same block back, so outputs
 * built from it (centreRefs, file sequence numbers) are identical on every attempt.
 */
export async function reserveSequenceOnce(ledger: Ledger, key: string, name: string, count: number): Promise<bigint> {
  checkCount(name, count);
  const onceName = `once:${key}`;
  return writeTransaction(ledger, async (trx) => {
    const existing = await trx('sequences').where({ name: onceName }).first('value');
    if (existing) return BigInt(existing.value);
    const start = await reserveIn(trx, ledger.dialect, name, count);
    await trx('sequences').insert({ name: onceName, value: start.toString() });
    return start;
  });
}

/** Fewest bytes a record takes: a file of `size` bytes holds fewer records than size / this. */
const SMALLEST_RECORD = 120;

/**
 * The numbers an inbound file gets when it arrives, in arrival order: its sequence (that its
 * outbound fileSeqs derive from) and a block of centreRefs big enough for every record it can hold.
 */
export async function reserveInboundNumbers(ledger: Ledger, size: number): Promise<{ inSeq: number; centreRefStart: number }> {
  return writeTransaction(ledger, (trx) => reserveInboundNumbersIn(trx, ledger.dialect, size));
}

/** reserveInboundNumbers inside the caller's transaction (the file's ledger row commits with them). */
export async function reserveInboundNumbersIn(trx: Knex.Transaction, dialect: Ledger['dialect'], size: number): Promise<{ inSeq: number; centreRefStart: number }> {
  const inSeq = await reserveIn(trx, dialect, 'inbound', 1);
  const centreRefStart = await reserveIn(trx, dialect, 'centreRef', Math.floor(size / SMALLEST_RECORD) + 1);
  return { inSeq: Number(inSeq), centreRefStart: Number(centreRefStart) };
}
