// Billing (23 -> 32): ID conversion (ID変換) of a utility's bills. Each bill is checked (customer
// registered, card on file, bill number not seen before for its month); refused bills are
// answered at once in a 24 (NR, NC, DP); accepted ones become lump-sum sales with the card from
// the vault and the utility's merchant number, in an internal 31 that the ordinary route splits
// into 32s per card company (centreRefs, sent_records, each company's layout and code page).
// Everything is a function of the 23 and the ledger, so a retry after a crash writes the same
// files: slip numbers are reserved once per file and use date, centreRefs come from the block
// reserved at claim time, bills are inserted idempotently and a bill already recorded for this
// same record of this same file is not a duplicate of itself.
// Speed (issue 17 item 6): the bills are read as bytes and handled a batch at a time; customers
// and earlier bills are fetched per batch by one range scan of their primary key (rowsByKeys), the
// cards opened in one packed GCM pass straight into the records, and the bill rows inserted
// with multi-row statements. scripts/bench/utility.ts measures it.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { blankRecord, buildEnd, buildHeader, decodeField, encodeField, getFamily, getLayout, getMapping, RecordFileWriter, TotalsAccumulator, type FieldDef } from '../../formats/index.ts';
import { writeTransaction, type FileRow, type Ledger } from '../../spool/ledger/index.ts';
import { withDeferredSync, withRawSqlite, SqliteBatchInsert } from '../../spool/ledger/sqlite-raw.ts';
import { tokyoDate, tokyoTime } from '../../spool/tree.ts';
import type { PartnerConfig } from '../config.ts';
import type { JobContext } from '../context.ts';
import { planOutbound } from '../outbound.ts';
import type { OwnedEntry } from '../../spool/vault/vault.ts';
import { formatOf, OutboundWriter, putCardBytes, putDigits, rowsByKeys, streamStandard, vaultOf } from './common.ts';

/** An internal 31 to route like a merchant's. */
export interface InternalSales {
  path: string;
  fileType: '31';
  layout: string;
}

export type ForwardSales = (source: InternalSales) => Promise<string[]>;

const BILL_COLUMNS = ['partner_id', 'billing_month', 'bill_no', 'customer_no', 'amount', 'use_date', 'source_file_id', 'centre_ref', 'card_company_code', 'card_last4', 'source_record_no'] as const;

const BILLS_PER_BATCH = 4096;

interface CustomerCard {
  customer_no: string;
  state: string;
  card_company_code: string;
  card_enc: string;
  key_id: string;
  card_last4: string;
}

interface EarlierBill {
  billing_month: string;
  bill_no: string;
  source_file_id: string;
  source_record_no: number | null;
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

/** Bills as flat values, BILL_COLUMNS.length per bill; idempotent (a retry inserts nothing twice). */
async function insertBills(ledger: Ledger, values: unknown[]): Promise<void> {
  if (values.length === 0) return;
  const width = BILL_COLUMNS.length;
  if (ledger.dialect === 'sqlite') {
    // not synced one batch at a time: a retry inserts them again, and the commit that publishes
    // the 32s syncs them first
    await withRawSqlite(ledger, (conn) => withDeferredSync(conn, () => {
      conn.exec('begin immediate');
      try {
        const insert = new SqliteBatchInsert(conn, 'utility_bills', BILL_COLUMNS, 'insert or ignore');
        for (let i = 0; i < values.length; i += width) insert.add(values.slice(i, i + width));
        insert.end();
        conn.exec('commit');
      } catch (err) {
        conn.exec('rollback');
        throw err;
      }
    }));
    return;
  }
  for (let i = 0; i < values.length; i += 500 * width) {
    const objects: Record<string, unknown>[] = [];
    for (let r = i; r < Math.min(values.length, i + 500 * width); r += width) objects.push(Object.fromEntries(BILL_COLUMNS.map((c, k) => [c, values[r + k]])));
    await ledger.db('utility_bills').insert(objects).onConflict(['partner_id', 'billing_month', 'bill_no']).ignore();
  }
}

export async function routeBilling(ctx: JobContext, file: FileRow, utility: PartnerConfig, skip: Set<number>, forward: ForwardSales): Promise<string[]> {
  const { centre } = ctx;
  const { ledger } = centre;
  const db = ledger.db;
  const vault = await vaultOf(centre);
  const merchantNos = utility.utility?.merchantNos ?? {};
  const format = formatOf(utility, '23');
  const now = ctx.now();

  const billing = getLayout('billing.data');
  const bf = (n: string) => billing.byName.get(n)!;
  const [fCustomer, fMonth, fAmount, fUseDate, fBillNo] = ['customerNo', 'billingMonth', 'amount', 'useDate', 'billNo'].map(bf) as [FieldDef, FieldDef, FieldDef, FieldDef, FieldDef];
  const useDateOf = (rec: Buffer, off: number) => rec.toString('latin1', off + fUseDate.offset, off + fUseDate.offset + fUseDate.length); // N: digits

  // 1. slip numbers: one block per use date for the whole file
  const perDate = new Map<string, number>();
  await streamStandard(file.path!, format, 'billing.data', (rec) => {
    const d = useDateOf(rec, 0);
    perDate.set(d, (perDate.get(d) ?? 0) + 1);
  }, undefined, skip);
  const slipStart = await reserveSlips(ledger, file.id, utility.id, perDate);
  for (const [d, start] of slipStart) {
    if (start + perDate.get(d)! - 1 > 99_999) throw new Error(`utility ${utility.id}: more than 99999 bills with use date ${d}; slip numbers (N5) would repeat`);
  }
  const slipNext = new Map(slipStart);

  // 2. convert, a batch of bills at a time (BILLS_PER_BATCH): the bills' bytes, their customers'
  // rows and the opened cards are held only for the batch, and a card's number in clear only while
  // its record is written
  const sales = getFamily('sales');
  const salesData = getLayout('sales.data');
  const toSales = getMapping('billing.data', 'sales.data');
  const toResult = getMapping('billing.data', 'billing.result');
  const resultLayout = getLayout('billing.result');
  const interPath = path.join(centre.spool.work, `${file.id}.utility-sales.dat`);
  // a scratch file, read once by the split below and removed: a crash makes it again from the 23
  const inter = new RecordFileWriter(interPath, 'crlf', undefined, false);
  inter.write(buildHeader({
    fileType: '31', codeType: '0', senderCode: utility.code, senderName: '', createdDate: tokyoDate(now), createdTime: tokyoTime(now),
    receiverCode: centre.config.centre.code, fileSeq: file.file_seq ?? '0',
  }, sales.recordLength));
  const totals = new TotalsAccumulator(sales);
  const salesRec = blankRecord(salesData);
  const resultRec = blankRecord(resultLayout);
  const field = (n: string) => salesData.byName.get(n)!;
  const [fCompany, fMerchant, fSlip, fCard, fExpiry] = ['cardCompanyCode', 'merchantNo', 'slipNo', 'cardNo', 'expiry'].map(field) as [FieldDef, FieldDef, FieldDef, FieldDef, FieldDef];
  // the company code and merchant number of each card company, encoded once
  const companyBytes = new Map<string, Buffer>();
  for (const [code, no] of Object.entries(merchantNos)) {
    const b = blankRecord(salesData);
    encodeField(code, b, 0, fCompany);
    encodeField(no, b, 0, fMerchant);
    companyBytes.set(code, b);
  }
  const refused = new OutboundWriter(ctx, utility, '24', 'billing.result', planOutbound(ctx, file, utility, '24'));
  const centreRefStart = Number(file.centre_ref_start);
  const recLen = billing.recordLength;
  let chunk = Buffer.alloc(recLen * 1024);
  let chunkRecordNos = new Int32Array(1024);
  let inChunk = 0;
  let forwarded = 0;

  // a batch is a few read chunks: each writes one (synced) audit row and one insert of bills
  const processChunk = async (final = false) => {
    const n = inChunk;
    if (n === 0 || (!final && n < BILLS_PER_BATCH)) return;
    inChunk = 0;
    const customerNos: string[] = new Array(n);
    const months: string[] = new Array(n);
    const billNos: string[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const off = i * recLen;
      customerNos[i] = decodeField(chunk, off, fCustomer).trim();
      months[i] = chunk.toString('latin1', off + fMonth.offset, off + fMonth.offset + fMonth.length);
      billNos[i] = decodeField(chunk, off, fBillNo).trim();
    }
    const customers = new Map<string, CustomerCard>();
    for (const r of await rowsByKeys<CustomerCard>(ledger, 'utility_customers', { partner_id: utility.id }, 'customer_no', [...new Set(customerNos)].sort(),
      ['customer_no', 'state', 'card_company_code', 'card_enc', 'key_id', 'card_last4'])) customers.set(r.customer_no, r);
    const earlier = new Map<string, EarlierBill>();
    const byMonth = new Map<string, Set<string>>();
    for (let i = 0; i < n; i++) (byMonth.get(months[i]!) ?? byMonth.set(months[i]!, new Set()).get(months[i]!)!).add(billNos[i]!);
    for (const [month, nos] of byMonth) {
      for (const r of await rowsByKeys<EarlierBill>(ledger, 'utility_bills', { partner_id: utility.id, billing_month: month }, 'bill_no', [...nos].sort(),
        ['billing_month', 'bill_no', 'source_file_id', 'source_record_no'])) earlier.set(`${r.billing_month}|${r.bill_no}`, r);
    }
    // decisions in file order: '' forwarded, else the 24 code given at once
    const decisions: string[] = new Array(n);
    const toOpen: OwnedEntry[] = [];
    const openedIndex: number[] = [];
    const inThisChunk = new Set<string>();
    for (let i = 0; i < n; i++) {
      const c = customers.get(customerNos[i]!);
      const key = `${months[i]}|${billNos[i]}`;
      const before = earlier.get(key);
      let d = '';
      if (!c) d = 'NR';
      else if (c.state !== 'active' || !c.card_enc || !merchantNos[c.card_company_code] || !ctx.routes.companyByCode.has(c.card_company_code)) d = 'NC';
      // recorded before by another file, or by another record of this one; the same record of this
      // file is this bill seen again by a retry (a row from before migration 007 has no record number)
      else if (inThisChunk.has(key) || (before && (before.source_file_id !== file.id || (before.source_record_no !== null && Number(before.source_record_no) !== chunkRecordNos[i])))) d = 'DP';
      inThisChunk.add(key);
      decisions[i] = d;
      if (!d) {
        toOpen.push({ partnerId: utility.id, customerNo: customerNos[i]!, enc: c!.card_enc, keyId: c!.key_id });
        openedIndex.push(i);
      }
    }
    const slips = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      // every bill of the date takes its number, so numbers do not depend on decisions
      const d = useDateOf(chunk, i * recLen);
      const slip = slipNext.get(d)!;
      slipNext.set(d, slip + 1);
      slips[i] = slip;
      if (decisions[i]) {
        toResult.apply(chunk, i * recLen, resultRec, 0);
        encodeField(decisions[i]!, resultRec, 0, resultLayout.byName.get('resultCode')!);
        refused.put(resultRec);
      }
    }
    const bills: unknown[] = [];
    await vault.openEach(toOpen, { job: 'route', fileId: file.id, partnerId: utility.id, purpose: 'billing 23 -> 32 (ID conversion)' }, (k, plain, start, bar, end) => {
      const i = openedIndex[k]!;
      const off = i * recLen;
      const c = customers.get(customerNos[i]!)!;
      toSales.apply(chunk, off, salesRec, 0);
      const fixed = companyBytes.get(c.card_company_code)!;
      fixed.copy(salesRec, fCompany.offset, fCompany.offset, fCompany.offset + fCompany.length);
      fixed.copy(salesRec, fMerchant.offset, fMerchant.offset, fMerchant.offset + fMerchant.length);
      putDigits(salesRec, fSlip, slips[i]!);
      putCardBytes(salesRec, fCard, fExpiry, plain, start, bar, bar + 1, end);
      inter.write(salesRec);
      totals.add(salesRec, 0);
      salesRec.fill(0x20, fCard.offset, fCard.offset + fCard.length); // the number stays in the file being written, not here
      bills.push(utility.id, months[i], billNos[i], customerNos[i], Number(chunk.toString('latin1', off + fAmount.offset, off + fAmount.offset + fAmount.length)),
        useDateOf(chunk, off), file.id, centreRefStart + forwarded, c.card_company_code, c.card_last4, chunkRecordNos[i]);
      forwarded++;
    });
    await insertBills(ledger, bills);
  };

  let outputs: string[] = [];
  try {
    await streamStandard(file.path!, format, 'billing.data', (rec, recordNo) => {
      if ((inChunk + 1) * recLen > chunk.length) {
        const bigger = Buffer.alloc(chunk.length * 2);
        chunk.copy(bigger);
        chunk = bigger;
        const nos = new Int32Array(chunkRecordNos.length * 2);
        nos.set(chunkRecordNos);
        chunkRecordNos = nos;
      }
      rec.copy(chunk, inChunk * recLen);
      chunkRecordNos[inChunk++] = recordNo;
    }, () => processChunk(), skip);
    await processChunk(true);
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
