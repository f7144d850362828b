// What was forwarded to card companies, record by record, and the results that came back:
// the two sides of reconciliation 1 (sent vs returned).
import { maskCardNumber, type ForwardInfo } from '../formats/index.ts';
import { writeTransaction, type Ledger } from '../spool/ledger/index.ts';
import { FilesRepository } from '../spool/ledger/index.ts';
import { acquireRawSqlite, SqliteBatchInsert, type RawSqlite } from '../spool/ledger/sqlite-raw.ts';

const BATCH = 500;
/** SQLite rows per write transaction: short enough not to hold other writers up for long. */
const SQLITE_TRANSACTION_ROWS = 16384;

const SENT_COLUMNS = [
  'centre_ref', 'file_id', 'source_file_id', 'card_company_code', 'merchant_no', 'terminal_id', 'slip_no',
  'use_date', 'txn_type', 'amount', 'approval_no', 'masked_card_no', 'centre_date',
] as const;

type SentRow = unknown[];

/**
 * Collects forwarded records during a split and writes them idempotently (a retried route inserts
 * the same centreRefs again: ignored). SQLite: prepared multi-row inserts on the raw connection,
 * synchronously, in short transactions; PostgreSQL: batched knex inserts.
 */
export class SentRecordWriter {
  private rows: SentRow[] = [];
  private chain: Promise<void> = Promise.resolve();
  private error: unknown;

  private constructor(
    private readonly ledger: Ledger,
    private readonly sourceFileId: string,
    private readonly centreDate: string,
    private readonly fileIdOf: (destinationId: string) => string,
    private readonly raw?: { conn: RawSqlite; insert: SqliteBatchInsert; release(): Promise<void> },
  ) {}

  /** On SQLite this takes the ledger's connection until finish(): issue no ledger query in between. */
  static async open(ledger: Ledger, sourceFileId: string, centreDate: string, fileIdOf: (destinationId: string) => string): Promise<SentRecordWriter> {
    if (ledger.dialect !== 'sqlite') return new SentRecordWriter(ledger, sourceFileId, centreDate, fileIdOf);
    const { conn, release } = await acquireRawSqlite(ledger);
    return new SentRecordWriter(ledger, sourceFileId, centreDate, fileIdOf, { conn, release, insert: new SqliteBatchInsert(conn, 'sent_records', SENT_COLUMNS, 'insert or ignore') });
  }

  add(destinationId: string, _fields: Record<string, string>, info: ForwardInfo): void {
    if (!info.centreRef) return;
    const s = info.source;
    this.rows.push([
      info.centreRef,
      this.fileIdOf(destinationId),
      this.sourceFileId,
      s.cardCompanyCode!,
      s.merchantNo!.trim(),
      s.terminalId!.trim(),
      s.slipNo!,
      s.useDate!,
      s.txnType!,
      Number(s.amount),
      s.approvalNo!.trim(),
      maskCardNumber(s.cardNo!.trim()),
      this.centreDate,
    ]);
    if (this.rows.length >= (this.raw ? SQLITE_TRANSACTION_ROWS : BATCH)) this.flush();
  }

  private flush(): void {
    const batch = this.rows;
    this.rows = [];
    if (batch.length === 0 || this.error) return;
    if (this.raw) {
      const { conn, insert } = this.raw;
      try {
        conn.exec('begin immediate'); // waits on busy_timeout for another process's writer
        for (const row of batch) insert.add(row);
        insert.end();
        conn.exec('commit');
      } catch (err) {
        try {
          conn.exec('rollback');
        } catch {
          // no transaction left to roll back
        }
        this.error = err;
      }
      return;
    }
    const objects = batch.map((row) => Object.fromEntries(SENT_COLUMNS.map((c, i) => [c, row[i]])));
    this.chain = this.chain
      .then(async () => {
        if (!this.error) await this.ledger.db('sent_records').insert(objects).onConflict('centre_ref').ignore();
      })
      .catch((err: unknown) => {
        this.error ??= err; // kept for finish(): a rejection nobody awaits yet would crash the process
      });
  }

  /** Writes what is left and gives the connection back; call it in a finally. */
  async finish(): Promise<void> {
    try {
      this.flush();
      await this.chain;
    } finally {
      await this.raw?.release();
    }
    if (this.error) throw this.error;
  }

  /** Gives the connection back without writing the rest (the split failed). */
  async abandon(): Promise<void> {
    this.rows = [];
    await this.raw?.release();
  }
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
