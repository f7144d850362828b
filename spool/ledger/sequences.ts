// Centre-wide counters (centreRef blocks, outbound fileSeq per partner and type), reserved atomically.
import type { Ledger } from './db.ts';

/**
 * Reserves `count` consecutive values of the named sequence and returns the first.
 * Runs in a transaction with a row lock (PostgreSQL) or the database write lock (SQLite).
 */
export async function reserveSequence(ledger: Ledger, name: string, count: number): Promise<bigint> {
  if (!Number.isInteger(count) || count < 1) throw new Error(`reserveSequence(${name}): count must be a positive integer`);
  return ledger.db.transaction(async (trx) => {
    await trx.raw(
      ledger.dialect === 'postgres'
        ? 'insert into sequences (name, value) values (?, 0) on conflict (name) do nothing'
        : 'insert or ignore into sequences (name, value) values (?, 0)',
      [name],
    );
    const updated = await trx('sequences').where({ name }).increment('value', count).returning('value');
    const end = BigInt((updated[0] as { value: string | number }).value);
    return end - BigInt(count) + 1n;
  });
}
