// Validation errors of one inbound file, counted by code (for the rejections-by-code metric).
// Written with the ingest result; a retried ingest writes the same rows again.
import type { Knex } from 'knex';

/** Inside the caller's transaction: with the file's outcome. */
export async function recordFileErrorsIn(trx: Knex.Transaction, fileId: string, codes: readonly string[]): Promise<void> {
  const counts = new Map<string, number>();
  for (const c of codes) counts.set(c, (counts.get(c) ?? 0) + 1);
  await trx('file_errors').where({ file_id: fileId }).delete();
  if (counts.size) await trx('file_errors').insert([...counts].map(([code, count]) => ({ file_id: fileId, code: code.slice(0, 8), count })));
}
