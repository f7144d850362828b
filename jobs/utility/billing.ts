// Billing (23 -> 32): ID conversion (ID変換) of a utility's bills. Each bill is checked (customer
// registered, card on file, bill number not seen before for its month); refused bills are
// answered at once in a 24 (NR, NC, DP); accepted ones become lump-sum sales with the card from
// the vault and the utility's merchant number, in an internal 31 that the ordinary route splits
// into 32s per card company (centreRefs, sent_records, each company's layout and code page).
// Everything is a function of the 23 and the ledger, so a retry after a crash writes the same
// files: slip numbers are reserved once per file and use date, centreRefs come from the block
// reserved at claim time, bills are inserted idempotently and a bill already recorded for this
// same file is not a duplicate of itself.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Knex } from 'knex';
import { blankRecord, buildEnd, buildHeader, encodeField, getFamily, getLayout, getMapping, RecordFileWriter, TotalsAccumulator } from '../../formats/index.ts';
import { writeTransaction, type FileRow, type Ledger } from '../../spool/ledger/index.ts';
import { withRawSqlite, SqliteBatchInsert } from '../../spool/ledger/sqlite-raw.ts';
import { tokyoDate, tokyoTime } from '../../spool/tree.ts';
import type { PartnerConfig } from '../config.ts';
import type { JobContext } from '../context.ts';
import { planOutbound } from '../outbound.ts';
import { formatOf, OutboundWriter, readAsStandard, vaultOf } from './common.ts';

/** An internal 31 to route like a merchant's. */
export interface InternalSales {
  path: string;
  fileType: '31';
  layout: string;
}

export type ForwardSales = (source: InternalSales) => Promise<string[]>;

const BILL_COLUMNS = ['partner_id', 'billing_month', 'bill_no', 'customer_no', 'amount', 'use_date', 'source_file_id', 'centre_ref', 'card_company_code', 'card_last4'] as const;
const LOOKUP_BATCH = 900;

interface Pending {
  recordNo: number;
  canon: Buffer;
  customerNo: string;
  month: string;
  billNo: string;
  amount: number;
  useDate: string;
}

/** Slip numbers per use date, reserved once per file (a retry gets the same blocks). */
async function reserveSlips(ledger: Ledger, fileId: string, utilityId: string, counts: Map<string, number>): Promise<Map<string, number>> {
  const starts = new Map<string, number>();
  await writeTransaction(ledger, async (trx) => {
    for (const [useDate, count] of [...counts].sort()) {
      const onceName = `once:${fileId}:slip:${useDate}`;
      const existing = await trx('sequences').where({ name: onceName }).first('value');
      if (existing) { starts.set(useDate, Number(existing.value)); continue; }
      const name = `utilitySlip:${utilityId}:${useDate}`;
      await trx.raw(ledger.dialect === 'postgres' ? 'insert into sequences (name, value) values (?, 0) on conflict (name) do nothing' : 'insert or ignore into sequences (name, value) values (?, 0)', [name]);
      const updated = await trx('sequences').where({ name }).increment('value', count).returning('value');
      const start = Number((updated[0] as { value: string | number }).value) - count + 1;
      await trx('sequences').insert({ name: onceName, value: start });
      starts.set(useDate, start);
    }
  });
  return starts;
}

async function insertBills(ledger: Ledger, rows: unknown[][]): Promise<void> {
  if (rows.length === 0) return;
  if (ledger.dialect === 'sqlite') {
    await withRawSqlite(ledger, (conn) => {
      conn.exec('begin immediate');
      try {
        const insert = new SqliteBatchInsert(conn, 'utility_bills', BILL_COLUMNS, 'insert or ignore');
        for (const r of rows) insert.add(r);
        insert.end();
        conn.exec('commit');
      } catch (err) {
        conn.exec('rollback');
        throw err;
      }
    });
    return;
  }
  for (let i = 0; i < rows.length; i += 500) {
    const objects = rows.slice(i, i + 500).map((r) => Object.fromEntries(BILL_COLUMNS.map((c, k) => [c, r[k]])));
    await ledger.db('utility_bills').insert(objects).onConflict(['partner_id', 'billing_month', 'bill_no']).ignore();
  }
}

async function lookup<T>(db: Knex, keys: string[], query: (batch: string[]) => Knex.QueryBuilder): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < keys.length; i += LOOKUP_BATCH) out.push(...((await query(keys.slice(i, i + LOOKUP_BATCH))) as T[]));
  return out;
}

export async function routeBilling(ctx: JobContext, file: FileRow, utility: PartnerConfig, skip: Set<number>, forward: ForwardSales): Promise<string[]> {
  const { centre } = ctx;
  const { ledger } = centre;
  const db = ledger.db;
  const vault = await vaultOf(centre);
  const merchantNos = utility.utility?.merchantNos ?? {};
  const format = formatOf(utility, '23');
  const now = ctx.now();

  // 1. slip numbers: one block per use date for the whole file
  const perDate = new Map<string, number>();
  await readAsStandard(file.path!, format, 'billing.data', (f) => perDate.set(f.useDate!, (perDate.get(f.useDate!) ?? 0) + 1), undefined, skip);
  const slipStart = await reserveSlips(ledger, file.id, utility.id, perDate);
  for (const [d, start] of slipStart) {
    if (start + perDate.get(d)! - 1 > 99_999) throw new Error(`utility ${utility.id}: more than 99999 bills with use date ${d}; slip numbers (N5) would repeat`);
  }
  const slipNext = new Map(slipStart);

  // 2. convert
  const sales = getFamily('sales');
  const salesData = getLayout('sales.data');
  const toSales = getMapping('billing.data', 'sales.data');
  const toResult = getMapping('billing.data', 'billing.result');
  const resultLayout = getLayout('billing.result');
  const interPath = path.join(centre.spool.work, `${file.id}.utility-sales.dat`);
  const inter = new RecordFileWriter(interPath, 'crlf');
  inter.write(buildHeader({
    fileType: '31', codeType: '0', senderCode: utility.code, senderName: '', createdDate: tokyoDate(now), createdTime: tokyoTime(now),
    receiverCode: centre.config.centre.code, fileSeq: file.file_seq ?? '0',
  }, sales.recordLength));
  const totals = new TotalsAccumulator(sales);
  const salesRec = blankRecord(salesData);
  const resultRec = blankRecord(resultLayout);
  const field = (n: string) => salesData.byName.get(n)!;
  const [fCompany, fMerchant, fSlip, fCard, fExpiry] = ['cardCompanyCode', 'merchantNo', 'slipNo', 'cardNo', 'expiry'].map(field) as [ReturnType<typeof field>, ReturnType<typeof field>, ReturnType<typeof field>, ReturnType<typeof field>, ReturnType<typeof field>];
  const refused = new OutboundWriter(ctx, utility, '24', 'billing.result', planOutbound(ctx, file, utility, '24'));
  const seen = new Set<string>();
  const centreRefStart = Number(file.centre_ref_start);
  let forwarded = 0;
  let pending: Pending[] = [];

  const processChunk = async () => {
    const batch = pending;
    pending = [];
    if (batch.length === 0) return;
    const customerNos = [...new Set(batch.map((p) => p.customerNo))];
    const customers = new Map<string, { state: string; card_company_code: string; card_enc: string; key_id: string; card_last4: string }>();
    for (const r of await lookup<{ customer_no: string; state: string; card_company_code: string; card_enc: string; key_id: string; card_last4: string }>(db, customerNos, (b) =>
      db('utility_customers').where('partner_id', utility.id).whereIn('customer_no', b).select('customer_no', 'state', 'card_company_code', 'card_enc', 'key_id', 'card_last4'))) customers.set(r.customer_no, r);
    const earlier = new Map<string, string>();
    const byMonth = new Map<string, Set<string>>();
    for (const p of batch) (byMonth.get(p.month) ?? byMonth.set(p.month, new Set()).get(p.month)!).add(p.billNo);
    for (const [month, billNos] of byMonth) {
      for (const r of await lookup<{ bill_no: string; source_file_id: string }>(db, [...billNos], (b) =>
        db('utility_bills').where({ partner_id: utility.id, billing_month: month }).whereIn('bill_no', b).select('bill_no', 'source_file_id'))) earlier.set(`${month}|${r.bill_no}`, r.source_file_id);
    }
    const decisions: string[] = [];
    const toOpen: { i: number; enc: string; keyId: string }[] = [];
    batch.forEach((p, i) => {
      const c = customers.get(p.customerNo);
      const key = `${p.month}|${p.billNo}`;
      let d = '';
      if (!c) d = 'NR';
      else if (c.state !== 'active' || !c.card_enc || !merchantNos[c.card_company_code] || !ctx.routes.companyByCode.has(c.card_company_code)) d = 'NC';
      else if (seen.has(key) || (earlier.has(key) && earlier.get(key) !== file.id)) d = 'DP';
      seen.add(key);
      decisions.push(d);
      if (!d) toOpen.push({ i, enc: c!.card_enc, keyId: c!.key_id });
    });
    const cards = await vault.openMany(toOpen.map((o) => ({ partnerId: utility.id, customerNo: batch[o.i]!.customerNo, enc: o.enc, keyId: o.keyId })),
      { job: 'route', fileId: file.id, partnerId: utility.id, purpose: 'billing 23 -> 32 (ID conversion)' });
    const cardOf = new Map(toOpen.map((o, k) => [o.i, cards[k]!]));
    const rows: unknown[][] = [];
    batch.forEach((p, i) => {
      const slip = slipNext.get(p.useDate)!;
      slipNext.set(p.useDate, slip + 1); // every bill of the date takes its number, so numbers do not depend on decisions
      const d = decisions[i]!;
      if (d) {
        toResult.apply(p.canon, 0, resultRec, 0);
        encodeField(d, resultRec, 0, resultLayout.byName.get('resultCode')!);
        refused.put(resultRec);
        return;
      }
      const c = customers.get(p.customerNo)!;
      const card = cardOf.get(i)!;
      toSales.apply(p.canon, 0, salesRec, 0);
      encodeField(c.card_company_code, salesRec, 0, fCompany);
      encodeField(merchantNos[c.card_company_code]!, salesRec, 0, fMerchant);
      encodeField(String(slip), salesRec, 0, fSlip);
      encodeField(card.cardNo, salesRec, 0, fCard);
      encodeField(card.expiry, salesRec, 0, fExpiry);
      inter.write(salesRec);
      totals.add(salesRec, 0);
      rows.push([utility.id, p.month, p.billNo, p.customerNo, p.amount, p.useDate, file.id, centreRefStart + forwarded, c.card_company_code, c.card_last4]);
      forwarded++;
    });
    await insertBills(ledger, rows);
  };

  let outputs: string[] = [];
  try {
    await readAsStandard(file.path!, format, 'billing.data', (f, recordNo, canon) => {
      pending.push({ recordNo, canon: Buffer.from(canon), customerNo: f.customerNo!.trim(), month: f.billingMonth!, billNo: f.billNo!.trim(), amount: Number(f.amount), useDate: f.useDate! });
    }, processChunk, skip);
    await processChunk();
    const trailer = blankRecord(sales.trailer);
    totals.writeInto(trailer);
    inter.write(trailer);
    inter.write(buildEnd(sales.recordLength));
    inter.close();
  } catch (err) {
    inter.abandon();
    refused.abandon();
    await rm(interPath, { force: true });
    throw err;
  }
  try {
    if (forwarded > 0) outputs = await forward({ path: interPath, fileType: '31', layout: 'sales.data' });
    if (refused.count > 0) outputs.push(await refused.publish(ctx, file.id, `bills of ${file.id} refused at once (NR, NC, DP): ${refused.count}`));
    else refused.abandon();
  } finally {
    await rm(interPath, { force: true });
  }
  centre.log.info({ fileId: file.id, partner: utility.id, forwarded, refused: refused.count }, 'utility bills converted');
  return outputs;
}
