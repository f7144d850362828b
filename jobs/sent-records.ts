// What was forwarded to card companies, record by record, and the results that came back:
// the two sides of reconciliation 1 (sent vs returned).
import { maskCardNumber, type ForwardInfo } from '../formats/index.ts';
import { writeTransaction, type Ledger } from '../spool/ledger/index.ts';
import { FilesRepository } from '../spool/ledger/index.ts';

const BATCH = 500;

interface SentRow {
  centre_ref: string;
  file_id: string;
  source_file_id: string;
  card_company_code: string;
  merchant_no: string;
  terminal_id: string;
  slip_no: string;
  use_date: string;
  txn_type: string;
  amount: number;
  approval_no: string;
  masked_card_no: string;
  centre_date: string;
}

/** Collects forwarded records during a split and writes them in batches, idempotently. */
export class SentRecordWriter {
  private rows: SentRow[] = [];
  private chain: Promise<void> = Promise.resolve();
  private error: unknown;

  constructor(
    private readonly ledger: Ledger,
    private readonly sourceFileId: string,
    private readonly centreDate: string,
    private readonly fileIdOf: (destinationId: string) => string,
  ) {}

  add(destinationId: string, _fields: Record<string, string>, info: ForwardInfo): void {
    if (!info.centreRef) return;
    const s = info.source;
    this.rows.push({
      centre_ref: info.centreRef,
      file_id: this.fileIdOf(destinationId),
      source_file_id: this.sourceFileId,
      card_company_code: s.cardCompanyCode!,
      merchant_no: s.merchantNo!.trim(),
      terminal_id: s.terminalId!.trim(),
      slip_no: s.slipNo!,
      use_date: s.useDate!,
      txn_type: s.txnType!,
      amount: Number(s.amount),
      approval_no: s.approvalNo!.trim(),
      masked_card_no: maskCardNumber(s.cardNo!.trim()),
      centre_date: this.centreDate,
    });
    if (this.rows.length >= BATCH) this.flush();
  }

  private flush(): void {
    const batch = this.rows;
    this.rows = [];
    if (batch.length === 0) return;
    // A retried route inserts the same centreRefs again: ignored.
    this.chain = this.chain
      .then(async () => {
        if (!this.error) await this.ledger.db('sent_records').insert(batch).onConflict('centre_ref').ignore();
      })
      .catch((err: unknown) => {
        this.error ??= err; // kept for finish(): a rejection nobody awaits yet would crash the process
      });
  }

  async finish(): Promise<void> {
    this.flush();
    await this.chain;
    if (this.error) throw this.error;
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
