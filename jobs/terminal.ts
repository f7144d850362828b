// Loading accepted 81 terminal-transaction files into the ledger for Jmanager and reconciliation.
// Each file goes in as one transaction: its records packed per transaction date (terminal_batches),
// its aggregates per 71 key (jm_aggregates), plus a terminal_loads row that makes a retry a no-op.
import { readFile } from 'node:fs/promises';
import { openSource, streamCanonical } from '../formats/index.ts';
import type { FileRow } from '../spool/ledger/index.ts';
import type { JobContext } from './context.ts';
import { rejectsPath } from './handlers/ingest.ts';
import { TerminalAggregator, TerminalAmount } from './terminal/rows.ts';
import { terminalSink } from './terminal/sink.ts';

async function rejectedRecordNos(ctx: JobContext, fileId: string): Promise<Set<number>> {
  try {
    return new Set(JSON.parse(await readFile(rejectsPath(ctx, fileId), 'utf8')) as number[]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw err;
  }
}

/** Loads an accepted 81 file; returns the number of transactions it holds (also on a retry). */
export async function loadTerminalFile(ctx: JobContext, file: FileRow): Promise<number> {
  const { ledger } = ctx.centre;
  const done = await ledger.db('terminal_loads').where({ file_id: file.id }).first('record_count');
  if (done) return Number(done.record_count);
  if (!file.path) throw new Error(`file ${file.id} has no path`);
  const partner = ctx.centre.partner(file.partner_id);
  const format = partner.formats['81'];
  const src = await openSource(file.path, { layout: format?.layout, encoding: format?.encoding, framing: format?.framing });
  const skip = await rejectedRecordNos(ctx, file.id);
  const amountOf = new TerminalAmount(src.family.data);
  const aggregator = new TerminalAggregator(src.family.data);
  const sink = terminalSink(ledger, src.family.data, file.id);
  if (!(await sink.begin())) return loadedCount(ctx, file.id);
  let count = 0;
  try {
    await streamCanonical(
      src,
      (rec, off, recordNo, type) => {
        if (type !== '2' || skip.has(recordNo)) return;
        const amount = amountOf.of(rec, off);
        sink.addRecord(rec, off, recordNo, amount);
        aggregator.add(rec, off, amount);
        count++;
      },
      () => sink.flush(),
    );
    await sink.finish(aggregator, count);
  } catch (err) {
    await sink.abort();
    throw err;
  }
  ctx.centre.log.info({ fileId: file.id, transactions: count, aggregateRows: aggregator.size }, 'terminal transactions loaded');
  return count;
}

async function loadedCount(ctx: JobContext, fileId: string): Promise<number> {
  const row = await ctx.centre.ledger.db('terminal_loads').where({ file_id: fileId }).first('record_count');
  return Number(row?.record_count ?? 0);
}
