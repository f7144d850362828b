// What was forwarded to card companies, record by record, and the results that came back:
// the two sides of reconciliation 1 (sent vs returned).
import type { ForwardInfo, Layout } from '../formats/index.ts';
import type { Knex } from 'knex';
import { writeTransaction, type Ledger } from '../spool/ledger/index.ts';
import { FilesRepository } from '../spool/ledger/index.ts';
import { withRawSqlite, SqliteBatchInsert } from '../spool/ledger/sqlite-raw.ts';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import type { PoolClient } from 'pg';
import { SENT_COLUMNS, SentPacker, unpackBatch, type StoredBatch } from './sent-pack.ts';

const BATCH = 500;
/** Records per sent_batches row at most: what the route holds per destination. */
const PART_RECORDS = 65_536;
/** Rows per materializing transaction: short enough not to hold other writers up for long. */
const MATERIALIZE_ROWS = 50_000;

/**
 * Collects what a split forwards and records it as one packed batch per 32 file (sent_batches),
 * written in one statement when the split is done: a few rows per file instead of one row and five
 * index entries per record. Idempotent: a retried route packs the same records under the same
 * 32 file ids again, and the insert is ignored. Readers of sent_records get the rows through
 * materializeSentRecords first (recordResults and reconciliation call it).
 */
export class SentRecordWriter {
  private readonly packers = new Map<string, SentPacker>();
  /** parts written so far per destination: a long file is written in parts, so memory stays flat */
  private readonly parts = new Map<string, number>();
  private chain: Promise<void> = Promise.resolve();
  private error: unknown;

  private constructor(
    private readonly ledger: Ledger,
    private readonly sourceFileId: string,
    private readonly centreDate: string,
    private readonly fileIdOf: (destinationId: string) => string,
    private readonly partRecords: number,
  ) {}

  static async open(ledger: Ledger, sourceFileId: string, centreDate: string, fileIdOf: (destinationId: string) => string, options: { partRecords?: number } = {}): Promise<SentRecordWriter> {
    return new SentRecordWriter(ledger, sourceFileId, centreDate, fileIdOf, options.partRecords ?? PART_RECORDS);
  }

  add(destinationId: string, _fields: Record<string, string>, info: ForwardInfo): void {
    if (info.centreRef) this.addRecord(destinationId, info.sourceRecord, info.sourceOffset, info.sourceLayout, info.centreRef);
  }

  /** One record sent to `destinationId`, canonical bytes of `layout` at rec[off] (utility billing writes its 32s itself). */
  addRecord(destinationId: string, rec: Buffer, off: number, layout: Layout, centreRef: string): void {
    let packer = this.packers.get(destinationId);
    if (!packer) {
      packer = new SentPacker(layout);
      this.packers.set(destinationId, packer);
    }
    packer.add(rec, off, centreRef);
    if (packer.count >= this.partRecords) {
      this.packers.delete(destinationId);
      this.write([this.rowOf(destinationId, packer)]);
    }
  }

  private rowOf(destinationId: string, packer: SentPacker): Record<string, unknown> {
    const b = packer.finish();
    const part = this.parts.get(destinationId) ?? 0;
    this.parts.set(destinationId, part + 1);
    return {
      file_id: this.fileIdOf(destinationId), part, source_file_id: this.sourceFileId, centre_date: this.centreDate, fields: JSON.stringify(b.fields),
      record_count: b.count, first_ref: b.firstRef, last_ref: b.lastRef, refs: b.refs, records: b.records,
      masked_overrides: b.maskedOverrides ? JSON.stringify(b.maskedOverrides) : null, created_at: Date.now(),
    };
  }

  private write(rows: Record<string, unknown>[], db: Knex = this.ledger.db): void {
    this.chain = this.chain
      .then(async () => {
        if (!this.error) await db('sent_batches').insert(rows).onConflict(['file_id', 'part']).ignore();
      })
      .catch((err: unknown) => {
        this.error ??= err; // kept for finish(): a rejection nobody awaits yet would crash the process
      });
  }

  /** Waits for the parts written as the split went (call before finish(trx): they use the pool's connection). */
  async settle(): Promise<void> {
    await this.chain;
    if (this.error) throw this.error;
  }

  /** Writes the rest (the last part of every destination) in one statement; in `trx` when given (with the 32 files' rows). */
  async finish(trx?: Knex.Transaction): Promise<void> {
    const rows = [...this.packers].map(([destinationId, packer]) => this.rowOf(destinationId, packer));
    this.packers.clear();
    if (rows.length) this.write(rows, trx);
    await this.chain;
    if (this.error) throw this.error;
  }

  /** Drops what was collected (the split failed). */
  async abandon(): Promise<void> {
    this.packers.clear();
    await this.chain;
  }
}

interface BatchHead { id: number | string; source_file_id: string; record_count: number | string }

/** Consecutive batches up to about MATERIALIZE_ROWS records, never splitting one source file's batches. */
function groups(heads: BatchHead[]): BatchHead[][] {
  const out: BatchHead[][] = [];
  let cur: BatchHead[] = [];
  let rows = 0;
  for (let i = 0; i < heads.length; i++) {
    const h = heads[i]!;
    cur.push(h);
    rows += Number(h.record_count);
    const next = heads[i + 1];
    if (rows >= MATERIALIZE_ROWS && (!next || next.source_file_id !== h.source_file_id)) {
      out.push(cur);
      cur = [];
      rows = 0;
    }
  }
  if (cur.length) out.push(cur);
  return out;
}

/** One source file's rows in centreRef order (the order the split forwarded them in), source by source. */
function rowsOf(batches: StoredBatch[]): unknown[][] {
  const bySource = new Map<string, unknown[][]>();
  for (const b of batches) {
    const rows = unpackBatch(b);
    const list = bySource.get(b.source_file_id);
    if (list) for (const r of rows) list.push(r);
    else bySource.set(b.source_file_id, rows);
  }
  const out: unknown[][] = [];
  for (const rows of bySource.values()) {
    rows.sort((a, b) => (a[0] as number) - (b[0] as number));
    for (const r of rows) out.push(r);
  }
  return out;
}

/** COPY text format: tab-separated, \\N for null, backslash escapes. */
const copyValue = (v: unknown) => (v === null || v === undefined ? '\\N' : String(v).replace(/[\\\t\n\r]/g, (c) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[c]!));

/**
 * PostgreSQL: the group's rows by COPY into a staging table, then insert ... on conflict do
 * nothing in the order they were staged, and the batches deleted, in one transaction (about 6x
 * faster than multi-row inserts here: scripts/bench/sent-records.ts).
 */
async function materializeByCopy(ledger: Ledger, ids: (number | string)[]): Promise<number> {
  const client = (ledger.db as unknown as { client: { acquireConnection(): Promise<PoolClient>; releaseConnection(c: PoolClient): Promise<void> } }).client;
  const conn = await client.acquireConnection();
  try {
    await conn.query('begin');
    try {
      const batches = (await conn.query(`select ${BATCH_COLUMNS.join(',')} from sent_batches where id = any($1::bigint[]) order by id`, [ids.map(String)])).rows as StoredBatch[];
      const rows = rowsOf(batches);
      await conn.query('create temporary table if not exists sent_stage (like sent_records including defaults, ord bigserial) on commit drop');
      const lines = function* () {
        for (let i = 0; i < rows.length; i += 1000) yield rows.slice(i, i + 1000).map((r) => r.map(copyValue).join('\t') + '\n').join('');
      };
      await pipeline(Readable.from(lines()), conn.query(copyFrom(`copy sent_stage (${SENT_COLUMNS.join(',')}) from stdin`)));
      await conn.query(`insert into sent_records (${SENT_COLUMNS.join(',')}) select ${SENT_COLUMNS.join(',')} from sent_stage order by ord on conflict (centre_ref) do nothing`);
      await conn.query('delete from sent_batches where id = any($1::bigint[])', [ids.map(String)]);
      await conn.query('commit');
      return rows.length;
    } catch (err) {
      await conn.query('rollback').catch(() => undefined);
      throw err;
    }
  } finally {
    await client.releaseConnection(conn);
  }
}

const BATCH_COLUMNS = ['id', 'file_id', 'source_file_id', 'centre_date', 'fields', 'record_count', 'refs', 'records', 'masked_overrides'];

/**
 * Turns the packed batches into sent_records rows (insert or ignore, so a row already there, with
 * its results, stays as it is) and deletes them, in the order they were written, each group in one
 * transaction: a crash leaves either the batch or its rows. Cheap when nothing is pending.
 */
export async function materializeSentRecords(ledger: Ledger): Promise<number> {
  const heads = (await ledger.db('sent_batches').orderBy('id').select('id', 'source_file_id', 'record_count')) as BatchHead[];
  let written = 0;
  for (const group of groups(heads)) {
    const ids = group.map((h) => h.id);
    if (ledger.dialect === 'sqlite') {
      written += await withRawSqlite(ledger, (conn) => {
        conn.exec('begin immediate'); // waits on busy_timeout for another process's writer
        try {
          const batches = conn.prepare(`select ${BATCH_COLUMNS.join(',')} from sent_batches where id in (${ids.map(() => '?').join(',')}) order by id`).all(...ids) as StoredBatch[];
          const rows = rowsOf(batches);
          const insert = new SqliteBatchInsert(conn, 'sent_records', SENT_COLUMNS, 'insert or ignore');
          for (const row of rows) insert.add(row);
          insert.end();
          conn.prepare(`delete from sent_batches where id in (${ids.map(() => '?').join(',')})`).run(...ids);
          conn.exec('commit');
          return rows.length;
        } catch (err) {
          try {
            conn.exec('rollback');
          } catch {
            // no transaction left to roll back
          }
          throw err;
        }
      });
    } else {
      written += await materializeByCopy(ledger, ids);
    }
  }
  return written;
}

/** One 33 record as reconciliation needs it; card number already masked. */
export interface ReturnedResult {
  centreRef: string;
  resultCode: string;
  amount?: number;
  merchantNo?: string;
  terminalId?: string;
  slipNo?: string;
  useDate?: string;
  maskedCardNo?: string;
}

/**
 * Records the results of a 33 file against what was sent (code and returned amount), keeps the
 * results that match nothing sent (reconciliation 1: unexpected results), and marks each 32 file
 * whose records got results as acknowledged. Idempotent: a retried route does not count a result
 * twice.
 */
export async function recordResults(ledger: Ledger, resultFileId: string, results: ReturnedResult[], receivedDate = ''): Promise<void> {
  await materializeSentRecords(ledger);
  const sentFiles = new Set<string>();
  await writeTransaction(ledger, async (trx) => {
    for (let i = 0; i < results.length; i += BATCH) {
      const batch = results.slice(i, i + BATCH);
      for (const r of batch) {
        await trx('sent_records')
          .where({ centre_ref: r.centreRef })
          .where((q) => q.whereNull('result_file_id').orWhereNot('result_file_id', resultFileId))
          .update({ result_code: r.resultCode, result_file_id: resultFileId, result_amount: r.amount ?? null, result_count: trx.raw('result_count + 1') });
      }
      const rows = (await trx('sent_records').whereIn('centre_ref', batch.map((r) => r.centreRef)).select('file_id', 'centre_ref')) as { file_id: string; centre_ref: string | number }[];
      for (const row of rows) sentFiles.add(row.file_id);
      const known = new Set(rows.map((r) => BigInt(r.centre_ref).toString()));
      const unmatched = batch.filter((r) => !known.has(BigInt(r.centreRef).toString()));
      if (unmatched.length)
        await trx('unmatched_results')
          .insert(unmatched.map((r) => ({
            result_file_id: resultFileId, centre_ref: r.centreRef, merchant_no: r.merchantNo ?? null, terminal_id: r.terminalId ?? null, slip_no: r.slipNo ?? null,
            use_date: r.useDate ?? null, amount: r.amount ?? null, result_code: r.resultCode, masked_card_no: r.maskedCardNo ?? null, received_date: receivedDate,
          })))
          .onConflict(['result_file_id', 'centre_ref'])
          .ignore();
    }
  });
  const files = new FilesRepository(ledger);
  for (const id of sentFiles) {
    const f = await files.get(id);
    if (f?.state === 'sent') await files.transition(id, 'sent', 'acknowledged', `results returned in ${resultFileId}`).catch(() => undefined);
  }
}
