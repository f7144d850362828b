// What the customer lookup of billing does with the rows it fetched, the same in the job's thread
// and in the lookup thread (card-lookup-thread.ts): each bill's customer is not registered, has no
// card on file, or has a card to open. Imports nothing but types, so that the thread's bundle
// stays small.
import type { OpenedCards, SealedColumns } from '../../spool/vault/card-opener.ts';

/** The customer columns a bill needs, fetched as arrays in this order. */
export const CUSTOMER_COLUMNS = ['customer_no', 'state', 'card_company_code', 'card_enc', 'key_id'] as const;
/** The lookup statement, for selectByKeysRaw (its arguments: the partner id). */
export const CUSTOMER_SELECT = `select ${CUSTOMER_COLUMNS.join(', ')} from utility_customers where partner_id = ? and customer_no`;
const C_NO = 0, C_STATE = 1, C_COMPANY = 2, C_ENC = 3, C_KEY = 4;

/** A bill's customer: not in the vault (NR), without a card (deleted or invalid: NC), or with a card opened. */
export const NOT_REGISTERED = 0, NO_CARD = 1, CARD_OPENED = 2;

/** The customers of a batch of bills, their cards still sealed. */
export interface SealedBatch {
  /** per bill: NOT_REGISTERED, NO_CARD or CARD_OPENED */
  status: Uint8Array;
  /** per card to open (entry k): the bill it is for, and its card company code */
  billOf: Int32Array;
  companies: string[];
  columns: SealedColumns;
}

/** The same with the cards opened (entry k of `cards` is for bill billOf[k]); wipe `cards` after use. */
export interface CardsOfBatch {
  status: Uint8Array;
  billOf: Int32Array;
  companies: string[];
  cards: OpenedCards;
}

/** The distinct customer numbers of a batch, the keys to look up. */
export const distinct = (customerNos: readonly string[]): string[] => [...new Set(customerNos)];

/** Classifies each bill by its customer's row (rows as CUSTOMER_COLUMNS arrays, in any order, extras allowed). */
export function sealedBatch(partnerId: string, customerNos: readonly string[], rows: readonly unknown[][]): SealedBatch {
  const byNo = new Map<string, unknown[]>();
  for (const r of rows) byNo.set(r[C_NO] as string, r);
  const n = customerNos.length;
  const status = new Uint8Array(n);
  const billOf: number[] = [];
  const companies: string[] = [];
  const nos: string[] = [], encs: string[] = [], keyIds: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = byNo.get(customerNos[i]!);
    if (!c) { status[i] = NOT_REGISTERED; continue; }
    if (c[C_STATE] !== 'active' || !c[C_ENC]) { status[i] = NO_CARD; continue; }
    status[i] = CARD_OPENED;
    billOf.push(i);
    companies.push(c[C_COMPANY] as string);
    nos.push(customerNos[i]!);
    encs.push(c[C_ENC] as string);
    keyIds.push(c[C_KEY] as string);
  }
  return { status, billOf: Int32Array.from(billOf), companies, columns: { partnerId, customerNos: nos, encs, keyIds, count: nos.length } };
}
