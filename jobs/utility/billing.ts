// Billing (23 -> 32): ID conversion (ID変換) of a utility's bills. Each bill is checked (customer
// registered, card on file, bill number not seen before for its month); refused bills are
// answered at once in a 24 (NR, NC, DP); accepted ones become lump-sum sales with the card from
// the vault and the utility's merchant number, written straight into the 32 of the card company
// that holds the card (its layout and code page, a centreRef stamped on each, what was sent packed
// for reconciliation as the route does for a merchant's 31), and the bill itself is packed
// (bill-pack.ts) for the 24 that answers its result.
// Everything is a function of the 23 and the ledger, so a retry after a crash writes the same
// files: slip numbers are reserved once per file and use date, centreRefs come from the block
// reserved at claim time, the 32s, the 24, the packed bills and what was sent are published in one
// commit, and a bill already recorded for this same record of this same file is not a duplicate
// of itself.
// Speed (issue 17 item 6): the bills are read as bytes and handled a batch (a read chunk) at a
// time, two batches in turn: while one is converted and written, the next one's customers are
// looked up and its cards opened (card-lookup.ts: in a thread of its own on SQLite for a big file),
// by one range scan of the customers' primary key and one packed GCM pass; earlier bills are
// fetched per batch the same way (rowsByKeys); duplicates within the file are found from the bill
// keys' hashes (KeyHashes), comparing whole keys only where hashes repeat.
// scripts/bench/utility.ts measures it.
import { rm } from 'node:fs/promises';
import { decodeField, encodeField, getLayout, getMapping, type FieldDef } from '../../formats/index.ts';
import { writeTransaction, type FileRow, type Ledger } from '../../spool/ledger/index.ts';
import { tokyoDate } from '../../spool/tree.ts';
import type { PartnerConfig } from '../config.ts';
import type { JobContext } from '../context.ts';
import { planOutbound, publishOutbounds, type PublishedOutbound } from '../outbound.ts';
import { SentRecordWriter } from '../sent-records.ts';
import { BillBatchWriter, BillKeys, KeyHashes, pendingBillKeys } from './bill-pack.ts';
import { openCardLookup, NO_CARD, NOT_REGISTERED, type CardsOfBatch } from './card-lookup.ts';
import { copyBytes, formatOf, OutboundWriter, putCardBytes, putDigits, rowsByKeys, streamStandard, vaultOf } from './common.ts';

const BILLS_PER_BATCH = 1024;


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

/** Whether any bill of this utility and month is in utility_bills (materialized). */
async function hasBills(ledger: Ledger, partnerId: string, month: string): Promise<boolean> {
  return (await ledger.db('utility_bills').where({ partner_id: partnerId, billing_month: month }).first('bill_no')) !== undefined;
}

/** The digits at buf[at, at + len) as a number (an N field of a validated record). */
function digitsAt(buf: Buffer, at: number, len: number): number {
  let v = 0;
  for (let i = at; i < at + len; i++) v = v * 10 + (buf[i]! - 0x30);
  return v;
}

/** One card company's 32 of this 23, with its destination and the bytes its sales carry. */
interface CompanyOutput {
  destination: PartnerConfig;
  writer: OutboundWriter;
  /** a blank sales record holding the card company code and the utility's merchant number there */
  fixed: Buffer;
  code: Buffer;
}

export async function routeBilling(ctx: JobContext, file: FileRow, utility: PartnerConfig, skip: Set<number>): Promise<string[]> {
  const { centre } = ctx;
  const { ledger } = centre;
  const vault = await vaultOf(centre);
  const merchantNos = utility.utility?.merchantNos ?? {};
  const format = formatOf(utility, '23');
  const centreDate = tokyoDate(ctx.now());

  const billing = getLayout('billing.data');
  const bf = (n: string) => billing.byName.get(n)!;
  const [fCustomer, fMonth, fAmount, fUseDate, fBillNo] = ['customerNo', 'billingMonth', 'amount', 'useDate', 'billNo'].map(bf) as [FieldDef, FieldDef, FieldDef, FieldDef, FieldDef];
  if (fMonth.length !== BillKeys.MONTH || fBillNo.length !== BillKeys.BILL) throw new Error('billing.data: billingMonth and billNo are not the 6 and 12 bytes a bill key is made of');
  const useDateOf = (rec: Buffer, off: number) => rec.toString('latin1', off + fUseDate.offset, off + fUseDate.offset + fUseDate.length); // N: digits

  // 1. slip numbers: one block per use date for the whole file
  // and the hashes of the bill keys, for duplicates within the file (KeyHashes)
  const perDate = new Map<string, number>();
  const keyHashes = new KeyHashes();
  await streamStandard(file.path!, format, 'billing.data', (rec) => {
    const d = useDateOf(rec, 0);
    perDate.set(d, (perDate.get(d) ?? 0) + 1);
    keyHashes.add(rec, fMonth.offset, fBillNo.offset);
  }, undefined, skip);
  const repeatedHashes = keyHashes.repeated();
  const slipStart = await reserveSlips(ledger, file.id, utility.id, perDate);
  for (const [d, start] of slipStart) {
    if (start + perDate.get(d)! - 1 > 99_999) throw new Error(`utility ${utility.id}: more than 99999 bills with use date ${d}; slip numbers (N5) would repeat`);
  }
  const slipNext = new Map(slipStart);
  let bills23 = 0;
  for (const count of perDate.values()) bills23 += count;

  // 2. convert, a batch of bills at a time (BILLS_PER_BATCH): the bills' bytes, their customers'
  // rows and the opened cards are held only for the batch, and a card's number in clear only while
  // its record is written
  const salesData = getLayout('sales.data');
  const toSales = getMapping('billing.data', 'sales.data');
  const toResult = getMapping('billing.data', 'billing.result');
  const resultLayout = getLayout('billing.result');
  const resultRec = Buffer.alloc(resultLayout.recordLength, 0x20);
  const field = (n: string) => salesData.byName.get(n)!;
  const [fCompany, fMerchant, fSlip, fCard, fExpiry, fRef, fRefDate] = ['cardCompanyCode', 'merchantNo', 'slipNo', 'cardNo', 'expiry', 'centreRef', 'centreDate'].map(field) as FieldDef[] as [FieldDef, FieldDef, FieldDef, FieldDef, FieldDef, FieldDef, FieldDef];
  const salesRec = Buffer.alloc(salesData.recordLength, 0x20);
  const centreDateBytes = Buffer.alloc(salesData.recordLength, 0x20);
  encodeField(centreDate, centreDateBytes, 0, fRefDate);
  const outputs = new Map<string, CompanyOutput>(); // by card company code
  // by destination partner: card companies delivered through one partner share its one 32 (as
  // the merchant route's split makes it); two writers would plan the same file
  const writers = new Map<string, OutboundWriter>();
  const companyOutput = (code: string): CompanyOutput => {
    let out = outputs.get(code);
    if (!out) {
      const destination = ctx.routes.companyByCode.get(code)!;
      const fixed = Buffer.alloc(salesData.recordLength, 0x20);
      encodeField(code, fixed, 0, fCompany);
      encodeField(merchantNos[code]!, fixed, 0, fMerchant);
      let writer = writers.get(destination.id);
      if (!writer) writers.set(destination.id, (writer = new OutboundWriter(ctx, destination, '32', 'sales', planOutbound(ctx, file, destination, '32'))));
      out = { destination, fixed, code: Buffer.from(code, 'latin1'), writer };
      outputs.set(code, out);
    }
    return out;
  };
  // a card company the utility bills through (its merchant number there) and that the centre routes to
  const billableCodes = new Map<string, boolean>();
  const billable = (code: string) => {
    let ok = billableCodes.get(code);
    if (ok === undefined) billableCodes.set(code, (ok = !!merchantNos[code] && ctx.routes.companyByCode.has(code)));
    return ok;
  };
  const refused = new OutboundWriter(ctx, utility, '24', 'billing.result', planOutbound(ctx, file, utility, '24'));
  // what was sent, packed in parts of 16,384 records like the bills: smaller blobs keep the native memory down
  const sent = await SentRecordWriter.open(ledger, file.id, centreDate, (destId) => planOutbound(ctx, file, ctx.routes.byId.get(destId)!, '32').id, { partRecords: 16_384 });
  const bills = new BillBatchWriter(ledger, file.id, utility.id);
  // keys of this file's forwarded bills whose key hash is repeated in the file, and of other
  // files' bills not yet materialized
  const seen = new Set<string>();
  const pending = new BillKeys();
  await pendingBillKeys(ledger, utility.id, file.id, pending);
  const centreRefStart = Number(file.centre_ref_start);
  const recLen = billing.recordLength;
  let forwarded = 0;
  const monthsWithBills = new Map<string, boolean>();
  const lookup = await openCardLookup(ledger, vault, utility.id, { job: 'route', fileId: file.id, partnerId: utility.id, purpose: 'billing 23 -> 32 (ID conversion)' }, bills23);

  /** A batch of bills (their standard records one after the other) and, once looked up, their customers and cards. */
  interface Batch { bills: Buffer; recordNos: Int32Array; n: number; customerNos: string[]; looked?: Promise<CardsOfBatch> }
  const newBatch = (): Batch => ({ bills: Buffer.alloc(recLen * BILLS_PER_BATCH), recordNos: new Int32Array(BILLS_PER_BATCH), n: 0, customerNos: [] });
  // two batches in turn: one filled and looked up (in the lookup thread when there is one) while
  // the other is converted and written
  let filling = newBatch();
  let spare = newBatch();
  let looking: Batch | undefined;

  const startLookup = (b: Batch) => {
    const customerNos: string[] = new Array(b.n);
    for (let i = 0; i < b.n; i++) customerNos[i] = decodeField(b.bills, i * recLen, fCustomer).trim();
    b.customerNos = customerNos;
    b.looked = lookup.lookup(customerNos);
    b.looked.catch(() => undefined); // awaited in convert; meanwhile not an unhandled rejection
  };

  /** Decides and writes one looked-up batch, in file order. */
  const convert = async (b: Batch) => {
    const { bills: chunk, recordNos: chunkRecordNos, n, customerNos } = b;
    const { status, billOf, companies, cards } = await b.looked!;
    try {
      // bills of these months already materialized into utility_bills (those of other files are
      // duplicates), looked up only for months that have any
      const earlier = new Map<string, EarlierBill>();
      const byMonth = new Map<string, Set<string>>();
      for (let i = 0; i < n; i++) {
        const off = i * recLen;
        const month = chunk.toString('latin1', off + fMonth.offset, off + fMonth.offset + fMonth.length);
        let has = monthsWithBills.get(month);
        if (has === undefined) monthsWithBills.set(month, (has = await hasBills(ledger, utility.id, month)));
        if (has) (byMonth.get(month) ?? byMonth.set(month, new Set()).get(month)!).add(decodeField(chunk, off, fBillNo).trim());
      }
      for (const [month, nos] of byMonth) {
        for (const r of await rowsByKeys<EarlierBill>(ledger, 'utility_bills', { partner_id: utility.id, billing_month: month }, 'bill_no', [...nos],
          ['billing_month', 'bill_no', 'source_file_id', 'source_record_no'])) earlier.set(`${r.billing_month}|${r.bill_no}`, r);
      }
      // the card of each bill whose customer has one (entry k of cards)
      const cardOf = new Int32Array(n).fill(-1);
      for (let k = 0; k < billOf.length; k++) cardOf[billOf[k]!] = k;
      // decisions in file order: '' forwarded, else the 24 code given at once
      const decisions: string[] = new Array(n);
      const outputOf: (CompanyOutput | undefined)[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const off = i * recLen;
        const k = cardOf[i]!;
        let d = '';
        if (status[i] === NOT_REGISTERED) d = 'NR';
        else if (status[i] === NO_CARD || k < 0 || !billable(companies[k]!)) d = 'NC';
        else {
          const recordNo = chunkRecordNos[i]!;
          const before = earlier.size ? earlier.get(`${chunk.toString('latin1', off + fMonth.offset, off + fMonth.offset + fMonth.length)}|${decodeField(chunk, off, fBillNo).trim()}`) : undefined;
          // recorded before by another file, or by another record of this one; the same record of this
          // file is this bill seen again by a retry (a row from before migration 007 has no record number)
          if (before && (before.source_file_id !== file.id || (before.source_record_no !== null && Number(before.source_record_no) !== recordNo))) d = 'DP';
          else if (pending.has(chunk, off + fMonth.offset, off + fBillNo.offset)) d = 'DP';
          else if (repeatedHashes.size && repeatedHashes.has(BillKeys.hash(chunk, off + fMonth.offset, off + fBillNo.offset))) {
            const key = `${chunk.toString('latin1', off + fMonth.offset, off + fMonth.offset + fMonth.length)}|${chunk.toString('latin1', off + fBillNo.offset, off + fBillNo.offset + fBillNo.length)}`;
            if (seen.has(key)) d = 'DP';
            else seen.add(key);
          }
        }
        decisions[i] = d;
        if (!d) outputOf[i] = companyOutput(companies[k]!);
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
      const { plain, start, bar, end } = cards;
      for (let i = 0; i < n; i++) {
        if (decisions[i]) continue;
        const k = cardOf[i]!;
        const off = i * recLen;
        const out = outputOf[i]!;
        toSales.apply(chunk, off, salesRec, 0);
        copyBytes(out.fixed, fCompany.offset, salesRec, fCompany.offset, fCompany.length);
        copyBytes(out.fixed, fMerchant.offset, salesRec, fMerchant.offset, fMerchant.length);
        putDigits(salesRec, fSlip, slips[i]!);
        const ref = centreRefStart + forwarded;
        putDigits(salesRec, fRef, ref);
        copyBytes(centreDateBytes, fRefDate.offset, salesRec, fRefDate.offset, fRefDate.length);
        putCardBytes(salesRec, fCard, fExpiry, plain, start[k]!, bar[k]!, bar[k]! + 1, end[k]!);
        out.writer.put(salesRec, digitsAt(chunk, off + fAmount.offset, fAmount.length));
        sent.addRecord(out.destination.id, salesRec, 0, salesData, String(ref)); // packs the number masked
        salesRec.fill(0x20, fCard.offset, fCard.offset + fCard.length); // the number stays in the file being written, not here
        bills.add(chunk, off, out.code, plain, bar[k]! - 4, chunkRecordNos[i]!, ref);
        forwarded++;
      }
    } finally {
      cards.wipe();
    }
  };

  /** The filled batch goes to its lookup; the one looked up before it is converted meanwhile. */
  const batchFilled = async () => {
    const b = filling;
    if (b.n === 0) return;
    startLookup(b);
    filling = spare;
    filling.n = 0;
    const previous = looking;
    looking = b;
    if (previous) {
      await convert(previous);
      spare = previous;
    } else spare = newBatch();
  };

  const made: PublishedOutbound[] = [];
  try {
    await streamStandard(file.path!, format, 'billing.data', (rec, recordNo) => {
      const b = filling;
      if ((b.n + 1) * recLen > b.bills.length) { // a read chunk holds more bills than the batch had room for
        const bigger = Buffer.alloc(b.bills.length * 2);
        b.bills.copy(bigger);
        b.bills.fill(0);
        b.bills = bigger;
        const nos = new Int32Array(b.recordNos.length * 2);
        nos.set(b.recordNos);
        b.recordNos = nos;
      }
      b.bills.set(rec, b.n * recLen);
      b.recordNos[b.n++] = recordNo;
    }, async () => { if (filling.n >= BILLS_PER_BATCH) await batchFilled(); }, skip);
    await batchFilled();
    if (looking) await convert(looking);
    looking = undefined;
    filling.bills.fill(0);
    spare.bills.fill(0);
    for (const [destinationId, writer] of writers) made.push(await writer.finish(file.id, `bills of ${file.id} (${file.name}) for ${destinationId}: ${writer.count}`));
    if (refused.count > 0) made.push(await refused.finish(file.id, `bills of ${file.id} refused at once (NR, NC, DP): ${refused.count}`));
    else refused.abandon();
    await sent.settle();
    await bills.settle();
    // the 32s, the 24 of refused bills, what was sent and the bills: one commit (the route flushes
    // it before the 23 leaves work/)
    await publishOutbounds(ctx, made, {
      lazy: true,
      async inTransaction(trx) {
        await sent.finish(trx);
        await bills.finish(trx);
      },
    });
  } catch (err) {
    await looking?.looked?.then((r) => r.cards.wipe(), () => undefined);
    for (const writer of writers.values()) writer.abandon();
    refused.abandon();
    await sent.abandon();
    await Promise.all(made.map((m) => rm(m.tempPath, { force: true })));
    throw err;
  } finally {
    await lookup.close();
  }
  centre.log.info({ fileId: file.id, partner: utility.id, forwarded, refused: refused.count, lookupThread: lookup.threaded }, 'utility bills converted');
  return made.map((m) => m.plan.id);
}
