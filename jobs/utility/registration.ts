// Registration (21 -> 22): each record adds, changes or deletes a customer's card in the vault, and
// every record gets a 22 line. The changes, the 22 lines (utility_events) and the "applied" mark
// commit in one transaction, so a retry after a crash applies nothing twice and writes the same 22.
import type { Knex } from 'knex';
import { luhnValid, maskCardNumber } from '../../formats/index.ts';
import { writeTransaction, type FileRow } from '../../spool/ledger/index.ts';
import { tokyoDate } from '../../spool/tree.ts';
import type { Vault } from '../../spool/vault/vault.ts';
import type { PartnerConfig } from '../config.ts';
import type { JobContext } from '../context.ts';
import { planOutbound } from '../outbound.ts';
import { formatOf, last4, OutboundWriter, readAsStandard, vaultOf } from './common.ts';

export interface CustomerRow {
  partner_id: string;
  customer_no: string;
  state: 'active' | 'invalid' | 'deleted';
  card_company_code: string | null;
  card_hmac: string | null;
  card_enc: string | null;
  key_id: string | null;
  masked_card_no: string | null;
  card_last4: string | null;
  since: number;
  updated_at: number;
}

export interface UtilityEvent {
  partnerId: string;
  customerNo: string;
  event: '1' | '2' | '3';
  resultCode: string;
  cardLast4: string;
  eventDate: string;
}

/** R01: 12-19 digits, Luhn. */
export function cardProblem(cardNo: string): boolean {
  return !/^\d{12,19}$/.test(cardNo) || !luhnValid(cardNo);
}

/** R02: a real YYMM not before the month of `today` (YYYYMMDD). */
export function expiryProblem(expiry: string, today: string): boolean {
  if (!/^\d{2}(0[1-9]|1[0-2])$/.test(expiry)) return true;
  return 2000 + Number(expiry.slice(0, 2)) < Number(today.slice(0, 4)) || (2000 + Number(expiry.slice(0, 2)) === Number(today.slice(0, 4)) && Number(expiry.slice(2)) < Number(today.slice(4, 6)));
}

export async function isListedInvalid(db: Knex, vault: Vault, cardNo: string, expiry: string): Promise<boolean> {
  const row = await db('utility_invalid_cards').where({ card_hmac: vault.hmac(cardNo) }).whereIn('expiry', ['0000', expiry]).first('card_hmac');
  return Boolean(row);
}

/** Puts a new card on file for a customer: the row, and its history (the previous card's entry ended). */
export async function putCard(
  trx: Knex, vault: Vault, partnerId: string, customerNo: string, card: { cardNo: string; expiry: string; cardCompanyCode: string },
  at: number, endedBy: string, sourceFileId: string, existing: CustomerRow | undefined,
): Promise<void> {
  const sealed = vault.seal(partnerId, customerNo, card);
  const row = {
    state: 'active', card_company_code: card.cardCompanyCode, card_hmac: vault.hmac(card.cardNo), card_enc: sealed.enc, key_id: sealed.keyId,
    masked_card_no: maskCardNumber(card.cardNo), card_last4: last4(card.cardNo), updated_at: at,
  };
  if (existing) await trx('utility_customers').where({ partner_id: partnerId, customer_no: customerNo }).update({ ...row, since: existing.state === 'deleted' ? at : existing.since });
  else await trx('utility_customers').insert({ partner_id: partnerId, customer_no: customerNo, since: at, ...row });
  await endHistory(trx, partnerId, customerNo, at, endedBy);
  await trx('utility_card_history').insert({
    partner_id: partnerId, customer_no: customerNo, masked_card_no: row.masked_card_no, card_company_code: card.cardCompanyCode, expiry: card.expiry,
    valid_from: at, valid_to: null, ended_by: null, source_file_id: sourceFileId,
  });
}

export async function endHistory(trx: Knex, partnerId: string, customerNo: string, at: number, endedBy: string): Promise<void> {
  await trx('utility_card_history').where({ partner_id: partnerId, customer_no: customerNo }).whereNull('valid_to').update({ valid_to: at, ended_by: endedBy });
}

/** Applies a 21 to the vault (once) and publishes its 22. Returns the 22's id. */
export async function routeRegistration(ctx: JobContext, file: FileRow, utility: PartnerConfig, skip: Set<number>): Promise<string[]> {
  const { centre } = ctx;
  const vault = await vaultOf(centre);
  const today = tokyoDate(ctx.now());
  const records: { recordNo: number; f: Record<string, string> }[] = [];
  await readAsStandard(file.path!, formatOf(utility, '21'), 'registration.data', (f, recordNo) => records.push({ recordNo, f }), undefined, skip);
  const at = ctx.now().getTime();
  await writeTransaction(centre.ledger, async (trx) => {
    if (await trx('utility_applied').where({ file_id: file.id }).first()) return;
    const merchantNos = utility.utility?.merchantNos ?? {};
    for (const { recordNo, f } of records) {
      const customerNo = f.customerNo!.trim();
      const cardNo = f.cardNo!.trim();
      const existing = (await trx('utility_customers').where({ partner_id: utility.id, customer_no: customerNo }).first()) as CustomerRow | undefined;
      const registered = existing !== undefined && existing.state !== 'deleted';
      const onFile = registered && existing.card_last4 ? existing.card_last4 : '0000';
      let result = '000';
      let lastNow = onFile;
      if (!customerNo) result = 'R04';
      else if (f.action === '3') {
        if (!registered) result = 'R04';
        else {
          await trx('utility_customers').where({ partner_id: utility.id, customer_no: customerNo }).update({
            state: 'deleted', card_hmac: null, card_enc: null, key_id: null, masked_card_no: null, card_last4: null, updated_at: at,
          });
          await endHistory(trx, utility.id, customerNo, at, 'deleted');
          lastNow = '0000';
        }
      } else {
        if (cardProblem(cardNo)) result = 'R01';
        else if (expiryProblem(f.expiry!, today)) result = 'R02';
        else if (!ctx.routes.companyByCode.has(f.cardCompanyCode!) || !merchantNos[f.cardCompanyCode!]) result = 'R05';
        else if (await isListedInvalid(trx, vault, cardNo, f.expiry!)) result = 'R06';
        else if (f.action === '1' && registered) result = 'R03';
        else if (f.action === '2' && !registered) result = 'R04';
        else {
          await putCard(trx, vault, utility.id, customerNo, { cardNo, expiry: f.expiry!, cardCompanyCode: f.cardCompanyCode! }, at, f.action === '1' ? 'registered again' : 'changed', file.id, existing);
          lastNow = last4(cardNo);
        }
      }
      await trx('utility_events').insert({ source_file_id: file.id, seq: recordNo, partner_id: utility.id, customer_no: customerNo, event: '1', result_code: result, card_last4: lastNow, event_date: today });
    }
    await trx('utility_applied').insert({ file_id: file.id, applied_at: at });
  });
  const id = await publishEvents(ctx, file, utility);
  return id ? [id] : [];
}

/** Writes the 22 of the events a source file (21 or 42) made for one utility; null when there are none. */
export async function publishEvents(ctx: JobContext, file: FileRow, utility: PartnerConfig): Promise<string | null> {
  const plan = planOutbound(ctx, file, utility, '22');
  if (await ctx.centre.files.get(plan.id)) return plan.id;
  const events = (await ctx.centre.ledger.db('utility_events').where({ source_file_id: file.id, partner_id: utility.id }).orderBy('seq')) as Record<string, string>[];
  if (events.length === 0) return null;
  const out = new OutboundWriter(ctx, utility, '22', 'registration.result', plan);
  try {
    for (const e of events) {
      out.put(out.set(out.blank(), { customerNo: e.customer_no!, event: e.event!, resultCode: e.result_code!, cardLast4: e.card_last4!, eventDate: e.event_date! }));
    }
  } catch (err) {
    out.abandon();
    throw err;
  }
  return out.publish(ctx, file.id, `${events.length} registration results and card events for ${utility.id} from ${file.id}`);
}
