// Validity (有効性処理): a 41 with inquiryType 2 (validity + update) for every card on file, one
// file per card company, on each utility's schedule; the card companies' 42 answers update the
// vault (replaced card or new expiry: event 2; invalid: event 3) and go to the utility as 22 events.
import { createHash } from 'node:crypto';
import { encodeField, getLayout, maskCardNumber, type FieldDef } from '../../formats/index.ts';
import { reserveSequenceOnce, writeTransaction, type FileRow, type Ledger } from '../../spool/ledger/index.ts';
import { preparedOnce, withRawSqlite } from '../../spool/ledger/sqlite-raw.ts';
import { tokyoDate } from '../../spool/tree.ts';
import type { PartnerConfig } from '../config.ts';
import type { Handler, JobContext } from '../context.ts';
import { requestDelivery, type OutboundPlan } from '../outbound.ts';
import { endHistory, putCard, publishEvents, type CustomerRow } from './registration.ts';
import { formatOf, last4, OutboundWriter, putCardBytes, readAsStandard, utilities, utilityMerchants, vaultOf } from './common.ts';

const PAGE = 4096;

interface ActiveCard {
  customer_no: string;
  card_company_code: string;
  card_enc: string;
  key_id: string;
}

/** The next page of a utility's active cards after a customer number, in customer order. */
async function activeCardsAfter(ledger: Ledger, partnerId: string, after: string, limit: number): Promise<ActiveCard[]> {
  const q = ledger.db('utility_customers').where({ partner_id: partnerId, state: 'active' }).where('customer_no', '>', after).orderBy('customer_no').limit(limit)
    .select('customer_no', 'card_company_code', 'card_enc', 'key_id');
  if (ledger.dialect !== 'sqlite') return (await q) as ActiveCard[];
  const { sql, bindings } = q.toSQL().toNative();
  return withRawSqlite(ledger, (conn) => preparedOnce(conn, sql).all(...bindings) as ActiveCard[]); // knex builds the query, better-sqlite3 runs it: no per-row knex cost
}

/** Whether a cron pattern fires at some time on a date (YYYYMMDD): its day-of-month, month and day-of-week fields. */
export function cronFallsOn(pattern: string, date: string): boolean {
  const [, , dom, month, dow] = pattern.trim().split(/\s+/);
  const y = Number(date.slice(0, 4)), m = Number(date.slice(4, 6)), d = Number(date.slice(6, 8));
  const weekday = new Date(Date.UTC(y, m - 1, d)).getUTCDay();
  const matches = (field: string, value: number, min: number, max: number, alt?: number) =>
    field.split(',').some((part) => {
      const [range, stepText] = part.split('/');
      const step = stepText ? Number(stepText) : 1;
      let lo = min, hi = max;
      if (range !== '*') {
        const [a, b] = range!.split('-').map(Number);
        lo = a!;
        hi = b ?? (stepText ? max : a!);
      }
      return [value, alt].some((v) => v !== undefined && v >= lo && v <= hi && (v - lo) % step === 0);
    });
  return matches(dom!, d, 1, 31) && matches(month!, m, 1, 12) && matches(dow!, weekday, 0, 7, weekday === 0 ? 7 : undefined);
}

async function validityPlan(ctx: JobContext, utility: PartnerConfig, company: PartnerConfig, date: string): Promise<OutboundPlan> {
  let id = `U41.${date}.${utility.id}.${company.id}`;
  if (id.length > 64) id = `U41.${date}.${createHash('sha256').update(id).digest('hex').slice(0, 32)}`;
  const seq = await reserveSequenceOnce(ctx.centre.ledger, id, `fileSeq:41:${company.id}`, 1);
  return { id, fileSeq: String(seq % 1_000_000n).padStart(6, '0'), businessDate: date, name: `T41_${date}_${utility.id}.dat` };
}

/** Builds the 41s of one utility for a date (once: the files' ids are the utility and the date). */
export async function runValidity(ctx: JobContext, utility: PartnerConfig, date: string): Promise<string[]> {
  const { centre } = ctx;
  const db = centre.ledger.db;
  const marker = `validity:${utility.id}:${date}`;
  const done = await db('utility_applied').where({ file_id: marker }).first();
  const merchantNos = utility.utility?.merchantNos ?? {};
  const companies = new Map<string, PartnerConfig>();
  for (const code of Object.keys(merchantNos)) {
    const c = ctx.routes.companyByCode.get(code);
    if (c) companies.set(code, c);
  }
  const ids: string[] = [];
  if (done) {
    for (const c of new Set(companies.values())) {
      const plan = await validityPlan(ctx, utility, c, date);
      if (await centre.files.get(plan.id)) ids.push(plan.id);
    }
    return ids;
  }
  const vault = await vaultOf(centre);
  const writers = new Map<string, OutboundWriter>();
  /** per writer, its record with the company's fixed fields set; the customer's fields go in per card */
  const templates = new Map<OutboundWriter, Buffer>();
  const skipCompany = new Set<string>();
  const layout = getLayout('validity.data');
  const [fCustomer, fCard, fExpiry] = ['customerNo', 'cardNo', 'expiry'].map((n) => layout.byName.get(n)!) as [FieldDef, FieldDef, FieldDef];
  try {
    // in customer order, a page at a time (the primary key's order: a range scan, nothing sorted)
    let after = '';
    for (;;) {
      const page = await activeCardsAfter(centre.ledger, utility.id, after, PAGE);
      if (page.length === 0) break;
      after = page[page.length - 1]!.customer_no;
      const rows = page.filter((r) => companies.has(r.card_company_code) && merchantNos[r.card_company_code]);
      for (const code of new Set(rows.map((r) => r.card_company_code))) {
        const company = companies.get(code)!;
        if (writers.has(company.id) || skipCompany.has(company.id)) continue;
        const plan = await validityPlan(ctx, utility, company, date);
        if (await centre.files.get(plan.id)) { skipCompany.add(company.id); ids.push(plan.id); continue; }
        const w = new OutboundWriter(ctx, company, '41', 'validity', plan);
        writers.set(company.id, w);
        templates.set(w, w.set(w.blank(), { cardCompanyCode: code, merchantNo: merchantNos[code]!, inquiryType: '2', newExpiry: '0' }));
      }
      const todo = rows.filter((r) => writers.has(companies.get(r.card_company_code)!.id));
      await vault.openEach(todo.map((r) => ({ partnerId: utility.id, customerNo: r.customer_no, enc: r.card_enc, keyId: r.key_id })),
        { job: 'utility-validity', fileId: marker, partnerId: utility.id, purpose: 'validity 41 (inquiryType 2)' }, (i, plain, start, bar, end) => {
          const r = todo[i]!;
          const w = writers.get(companies.get(r.card_company_code)!.id)!;
          const rec = templates.get(w)!;
          encodeField(r.customer_no, rec, 0, fCustomer);
          putCardBytes(rec, fCard, fExpiry, plain, start, bar, bar + 1, end);
          w.put(rec);
          rec.fill(0x20, fCard.offset, fCard.offset + fCard.length); // the number stays only in the file being written
        });
    }
  } catch (err) {
    for (const w of writers.values()) w.abandon();
    throw err;
  }
  for (const w of writers.values()) ids.push(await w.publish(ctx, null, `validity check of ${w.count} cards of ${utility.id} on ${date}`));
  await db('utility_applied').insert({ file_id: marker, applied_at: Date.now() }).onConflict('file_id').ignore();
  return ids;
}

/** Job 'utility-validity': { partnerId?, date? }: one utility now, or every utility whose validity schedule falls on the date. */
export const utilityValidity: Handler = async (input, ctx) => {
  const date = typeof input.date === 'string' ? input.date : tokyoDate(ctx.now());
  const list = typeof input.partnerId === 'string'
    ? [ctx.centre.partner(input.partnerId)]
    : utilities(ctx).filter((u) => u.utility?.validity && cronFallsOn(u.utility.validity.schedule, date));
  for (const u of list) {
    const ids = await runValidity(ctx, u, date);
    for (const id of ids) {
      const f = await ctx.centre.files.get(id);
      if (f?.state === 'ready') await requestDelivery(ctx, id);
    }
    ctx.centre.log.info({ partner: u.id, date, files: ids.length }, 'utility validity check sent');
  }
};

/**
 * Applies the answers in a 42 that belong to utilities (once per file) and publishes each
 * utility's 22 of card events. A response about a card that is no longer the customer's (changed
 * since the 41) is stale and ignored.
 */
export async function applyValidityResponses(ctx: JobContext, file: FileRow, sender: PartnerConfig, skip: Set<number>): Promise<string[]> {
  const byMerchant = utilityMerchants(ctx);
  if (byMerchant.size === 0) return [];
  const records: { recordNo: number; f: Record<string, string>; utility: PartnerConfig }[] = [];
  await readAsStandard(file.path!, formatOf(sender, '42'), 'validity.data', (f, recordNo) => {
    const u = byMerchant.get(f.merchantNo!.trim());
    if (u) records.push({ recordNo, f, utility: u.partner });
  }, undefined, skip);
  if (records.length === 0) return [];
  const { centre } = ctx;
  const vault = await vaultOf(centre);
  const at = ctx.now().getTime();
  const today = tokyoDate(ctx.now());
  await writeTransaction(centre.ledger, async (trx) => {
    if (await trx('utility_applied').where({ file_id: file.id }).first()) return;
    for (const { recordNo, f, utility } of records) {
      const customerNo = f.customerNo!.trim();
      const cust = (await trx('utility_customers').where({ partner_id: utility.id, customer_no: customerNo }).first()) as CustomerRow | undefined;
      if (!cust || cust.state !== 'active' || cust.card_hmac !== vault.hmac(f.cardNo!)) continue; // stale or unknown
      const code = (f.resultCode ?? '').trim();
      const event = (e: '2' | '3', lastNow: string) => trx('utility_events').insert({ source_file_id: file.id, seq: recordNo, partner_id: utility.id, customer_no: customerNo, event: e, result_code: code.padEnd(3, ' ').slice(0, 3), card_last4: lastNow, event_date: today });
      if (code !== '000') {
        await trx('utility_customers').where({ partner_id: utility.id, customer_no: customerNo }).update({ state: 'invalid', updated_at: at });
        await endHistory(trx, utility.id, customerNo, at, `invalid (${code})`);
        await event('3', cust.card_last4 ?? '0000');
        continue;
      }
      const newCard = (f.newCardNo ?? '').trim();
      const newExpiry = f.newExpiry && f.newExpiry !== '0000' ? f.newExpiry : '';
      if (!newCard && (!newExpiry || newExpiry === f.expiry)) continue; // still good, nothing changed
      const cardNo = newCard || f.cardNo!.trim();
      await putCard(trx, vault, utility.id, customerNo, { cardNo, expiry: newExpiry || f.expiry!, cardCompanyCode: cust.card_company_code ?? f.cardCompanyCode! }, at,
        newCard ? 'replaced by a validity check' : 'expiry updated by a validity check', file.id, cust);
      await event('2', last4(cardNo));
    }
    await trx('utility_applied').insert({ file_id: file.id, applied_at: at });
  });
  const ids: string[] = [];
  for (const u of new Set(records.map((r) => r.utility))) {
    const id = await publishEvents(ctx, file, u);
    if (id) ids.push(id);
  }
  return ids;
}

/** 51/52: cards on the invalid-card lists, by HMAC (registration answers R06 for them). Idempotent. */
export async function recordInvalidCards(ctx: JobContext, file: FileRow, sender: PartnerConfig, skip: Set<number>): Promise<void> {
  if (utilities(ctx).length === 0) return;
  const vault = await vaultOf(ctx.centre);
  const rows: { hmac: string; expiry: string; company: string; until: string; add: boolean }[] = [];
  await readAsStandard(file.path!, formatOf(sender, file.file_type!), 'invalid.data', (f) => {
    rows.push({ hmac: vault.hmac(f.cardNo!), expiry: f.expiry!, company: f.cardCompanyCode!, until: f.listUntil!, add: f.action === '1' });
  }, undefined, skip);
  await writeTransaction(ctx.centre.ledger, async (trx) => {
    for (const r of rows) {
      if (r.add) await trx('utility_invalid_cards').insert({ card_hmac: r.hmac, expiry: r.expiry, card_company_code: r.company, list_until: r.until, source_file_id: file.id }).onConflict(['card_hmac', 'expiry']).merge(['list_until', 'source_file_id']);
      else await trx('utility_invalid_cards').where({ card_hmac: r.hmac, expiry: r.expiry }).delete();
    }
  });
}
