// Reading the Jmanager aggregates: summed across 81 files, one row per 71 key, in 71 file order
// (store, merchant, date, card company, payment kind, method, terminal). Also their retention.
import { withRawSqlite } from '../../spool/ledger/sqlite-raw.ts';
import type { Ledger } from '../../spool/ledger/index.ts';
import { AGG_KEY_COLUMNS, AGG_SUM_COLUMNS } from '../terminal/rows.ts';
import { purgeTerminalTxns } from '../terminal/pack.ts';

export interface AggregateRow {
  store_code: string;
  merchant_no: string;
  terminal_id: string;
  business_date: string;
  card_company_code: string;
  payment_kind: string;
  payment_method: string;
  sale_count: number;
  sale_amount: number;
  void_count: number;
  void_amount: number;
  return_count: number;
  return_amount: number;
}

export interface AggregateFilter {
  merchantNos: readonly string[];
  from: string;
  to: string;
  store?: string;
  terminal?: string;
  cardCompany?: string;
}

const ORDER = ['store_code', 'merchant_no', 'business_date', 'card_company_code', 'payment_kind', 'payment_method', 'terminal_id'] as const;

function aggregatesQuery(ledger: Ledger, filter: AggregateFilter) {
  const db = ledger.db;
  const q = db('jm_aggregates')
    .whereIn('merchant_no', [...filter.merchantNos])
    .whereBetween('business_date', [filter.from, filter.to])
    .select(...AGG_KEY_COLUMNS)
    .groupBy([...ORDER]) // the ORDER BY's order: one sort serves both
    .orderBy([...ORDER]);
  for (const c of AGG_SUM_COLUMNS) q.sum({ [c]: c });
  if (filter.store) q.where('store_code', filter.store);
  if (filter.terminal) q.where('terminal_id', filter.terminal);
  if (filter.cardCompany) q.where('card_company_code', filter.cardCompany);
  return q;
}

/** The query of queryAggregates as SQL, its bindings and its result columns in order. */
export function aggregatesSql(ledger: Ledger, filter: AggregateFilter): { sql: string; bindings: readonly unknown[]; columns: string[] } {
  const { sql, bindings } = aggregatesQuery(ledger, filter).toSQL().toNative();
  return { sql, bindings, columns: [...AGG_KEY_COLUMNS, ...AGG_SUM_COLUMNS] };
}

export async function queryAggregates(ledger: Ledger, filter: AggregateFilter): Promise<AggregateRow[]> {
  if (filter.merchantNos.length === 0) return [];
  const rows = (await aggregatesQuery(ledger, filter)) as Record<string, unknown>[];
  // PostgreSQL returns sums of bigints as strings.
  for (const r of rows) for (const c of AGG_SUM_COLUMNS) r[c] = Number(r[c]);
  return rows as unknown as AggregateRow[];
}

/**
 * The rows of queryAggregates, handed to `use` as they come: on SQLite straight from a statement
 * iterator on the raw connection (held while `use` runs), so that a head office's month is never
 * all in memory; on PostgreSQL as queryAggregates reads them.
 */
export async function withAggregates<T>(ledger: Ledger, filter: AggregateFilter, use: (rows: Iterable<AggregateRow>) => Promise<T>): Promise<T> {
  if (ledger.dialect !== 'sqlite' || filter.merchantNos.length === 0) return use(await queryAggregates(ledger, filter));
  const { sql, bindings } = aggregatesSql(ledger, filter);
  return withRawSqlite(ledger, async (conn) => {
    const it = conn.prepare(sql).iterate(...bindings) as IterableIterator<AggregateRow>;
    try {
      return await use({ [Symbol.iterator]: () => it });
    } finally {
      it.return?.();
    }
  });
}

/** Deletes transactions and aggregates of business dates before `cutoffDate` (YYYYMMDD). */
export async function purgeTerminalHistory(ledger: Ledger, cutoffDate: string): Promise<{ aggregates: number; transactions: number }> {
  const aggregates = await ledger.db('jm_aggregates').where('business_date', '<', cutoffDate).delete();
  const transactions = await purgeTerminalTxns(ledger, cutoffDate);
  return { aggregates, transactions };
}
