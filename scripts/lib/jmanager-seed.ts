// Jmanager aggregate rows for a head office straight into the ledger, as loaded 81 files would
// leave them (one 81 file per business day): for tests, the web benchmark and the demo portal.
import type { Ledger } from '../../spool/ledger/index.ts';
import { addDays } from '../../jobs/jmanager/periods.ts';
import { seededRandom } from '../../formats/index.ts';

export interface SeedOptions {
  merchantNos: string[];
  /** Last business date (YYYYMMDD) and how many days back from it. */
  endDate: string;
  days: number;
  stores: number;
  terminalsPerStore: number;
  cardCompanies: string[];
  seed?: number;
  /** prefix of the 81 file ids the rows pretend to come from */
  filePrefix?: string;
}

export interface SeedTotals {
  rows: number;
  sale_count: number;
  sale_amount: number;
}

export async function seedAggregates(ledger: Ledger, o: SeedOptions): Promise<SeedTotals> {
  const rnd = seededRandom(o.seed ?? 1);
  const totals: SeedTotals = { rows: 0, sale_count: 0, sale_amount: 0 };
  let batch: Record<string, unknown>[] = [];
  const flush = async () => {
    if (batch.length) await ledger.db.batchInsert('jm_aggregates', batch as never, 500);
    batch = [];
  };
  for (let d = o.days - 1; d >= 0; d--) {
    const date = addDays(o.endDate, -d);
    for (let s = 0; s < o.stores; s++) {
      const merchantNo = o.merchantNos[s % o.merchantNos.length]!;
      for (let t = 0; t < o.terminalsPerStore; t++) {
        for (const company of o.cardCompanies) {
          const saleCount = 1 + Math.floor(rnd() * 40);
          const saleAmount = saleCount * (500 + Math.floor(rnd() * 9500));
          const voids = Math.floor(rnd() * 2);
          const returns = Math.floor(rnd() * 2);
          batch.push({
            file_id: `${o.filePrefix ?? 'I-seed'}-${date}`, merchant_no: merchantNo, store_code: `S${String(s + 1).padStart(4, '0')}`, terminal_id: `T${String(s + 1).padStart(4, '0')}${String(t + 1).padStart(2, '0')}`,
            business_date: date, card_company_code: company, payment_kind: '1', payment_method: '10',
            sale_count: saleCount, sale_amount: saleAmount, void_count: voids, void_amount: voids * 1000, return_count: returns, return_amount: returns * 800,
          });
          totals.rows++;
          totals.sale_count += saleCount;
          totals.sale_amount += saleAmount;
          if (batch.length >= 5000) await flush();
        }
      }
    }
  }
  await flush();
  return totals;
}
