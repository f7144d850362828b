// Utility billing end to end through `tsunagi cycle` (child processes), on SQLite and PostgreSQL:
// registration 21 -> 22 (every R code), billing 23 -> 32 -> 33 -> 24 (every result code, NR, NC and
// DP at once), validity 41 (inquiryType 2, from the vault) -> 42 -> vault updated -> 22 events, and
// no whole card number in any output, log, notice or report of the run.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import knexFactory from 'knex';
import { openCentre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { Writable } from 'node:stream';
import { PG_ADMIN_URL } from '../helpers/ledgers.ts';
import { TSUNAGI_BIN } from '../helpers/crash.ts';
import { makeJobContext } from '../../jobs/runtime.ts';
import { runReconciliation } from '../../jobs/reconcile/run.ts';
import { materializeUtilityBills } from '../../jobs/utility/bill-pack.ts';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run_ = promisify(execFile);
import type { TestCentre } from '../helpers/centre.ts';
import { card, cycle, cycleInProcess, makeUtilityCentre, readRecordFile, remoteFiles, UTILITY, UTILITY_CODE, UTILITY_MERCHANTS, writeRecordFile } from './helpers.ts';

const CENTRE = '0000000001';
const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await allFiles(p)));
    else out.push(p);
  }
  return out;
}

async function flows(ledgerUrl: string | undefined, runner: typeof cycle) {
  const { centre, env } = await makeUtilityCentre(ledgerUrl);
  if (process.env.TSUNAGI_KEEP) console.log(`# centre ${centre.dir}`);
  const inbound = (id: string) => path.join(centre.dir, 'spool', 'partners', id, 'inbound');
  const logs: string[] = [];
  const run = async (date: string, now: string) => { const t = Date.now(); logs.push(await runner(centre, env, date, now)); if (process.env.TSUNAGI_TRACE) console.log(`# cycle ${date} ${Date.now() - t} ms`); if (process.env.TSUNAGI_KEEP) await writeFile(path.join(centre.dir, 'cycles.log'), logs.join('\n')); };
  const cards = {
    k1: card('411111', 1), k2: card('555555', 2), k9: card('411111', 9), k10: card('411111', 10), k11: card('555555', 11), k11b: card('555555', 111),
    k12: card('411111', 12), k13: card('555555', 13), k14: card('411111', 14), k8: card('411111', 8), listed: card('411111', 66), k9new: card('411111', 99),
  };
  const wholeNumbers = [...Object.values(cards)];

  // 0. cc1's regular invalid-card list: one card on it (registration answers R06)
  await writeRecordFile(path.join(inbound('cc1'), 'TEIREI.dat'), 'invalid', '51', { sender: '2000000001', receiver: CENTRE, fileSeq: 1, date: '20261125' }, [
    { cardCompanyCode: '001', cardNo: cards.listed, expiry: '0000', action: '1', reason: '01', registeredDate: '20261124', listUntil: '20270531', targetMerchantNo: '' },
  ]);
  await run('20261125', '2026-11-25T01:00:00Z');

  // 1. registration
  const reg = (action: string, customerNo: string, cardNo: string, expiry = '3012', company = '001') => ({ action, customerNo, cardCompanyCode: company, cardNo, expiry, holderName: 'ﾔﾏﾀﾞ ﾀﾛｳ', applicationDate: '20261120' });
  const regs = [
    reg('1', 'K01', cards.k1), reg('1', 'K02', cards.k2, '3012', '002'), reg('1', 'K03', cards.k1.slice(0, -1) + String((Number(cards.k1.at(-1)) + 1) % 10)),
    reg('1', 'K04', cards.k13, '2001'), reg('1', 'K05', cards.k14, '3012', '009'), reg('1', 'K06', cards.listed), reg('1', 'K01', cards.k2),
    reg('2', 'K07', cards.k14), reg('3', 'K07', '', '0000'), reg('1', 'K08', cards.k8), reg('3', 'K08', '', '0000'),
    reg('1', 'K09', cards.k9), reg('1', 'K10', cards.k10), reg('1', 'K11', cards.k11, '3012', '002'), reg('2', 'K11', cards.k11b, '3101', '002'),
    reg('1', 'K12', cards.k12), reg('1', 'K13', cards.k13, '3012', '002'), reg('1', 'K14', cards.k14),
  ];
  await writeRecordFile(path.join(inbound(UTILITY), 'TOROKU.dat'), 'registration', '21', { sender: UTILITY_CODE, receiver: CENTRE, fileSeq: 1, date: '20261126' }, regs);
  await run('20261126', '2026-11-26T01:00:00Z');
  const [r22] = await remoteFiles(centre, UTILITY, '22');
  assert.ok(r22, 'a 22 went to the utility');
  const results = (await readRecordFile(r22!)).records;
  assert.deepEqual(results.map((r) => `${r.customerNo}:${r.event}:${r.resultCode}`), [
    'K01:1:000', 'K02:1:000', 'K03:1:R01', 'K04:1:R02', 'K05:1:R05', 'K06:1:R06', 'K01:1:R03', 'K07:1:R04', 'K07:1:R04', 'K08:1:000', 'K08:1:000',
    'K09:1:000', 'K10:1:000', 'K11:1:000', 'K11:1:000', 'K12:1:000', 'K13:1:000', 'K14:1:000',
  ]);
  assert.equal(results[0]!.cardLast4, cards.k1.slice(-4));
  assert.equal(results[6]!.cardLast4, cards.k1.slice(-4), 'R03 shows the card still on file');
  assert.equal(results[10]!.cardLast4, '0000', 'deleted: no card on file');

  // 2. billing: 7 forwarded bills for the 7 result codes, one more for K01, and NR, NC, DP
  const bill = (customerNo: string, billNo: string, amount = '5400', useDate = '20261126') => ({ customerNo, billingMonth: '202611', billingKind: '1', amount, useDate, billNo });
  await writeRecordFile(path.join(inbound(UTILITY), 'SEIKYU1.dat'), 'billing', '23', { sender: UTILITY_CODE, receiver: CENTRE, fileSeq: 1, date: '20261126' }, [
    bill('K01', 'B0001'), bill('K02', 'B0002'), bill('K09', 'B0009'), bill('K10', 'B0010'), bill('K11', 'B0011'), bill('K12', 'B0012'), bill('K13', 'B0013'),
    bill('K14', 'B0014', '1200', '20261125'), bill('K99', 'B0099'), bill('K08', 'B0008'), bill('K03', 'B0003'), bill('K01', 'B0001', '999'),
  ]);
  await run('20261126', '2026-11-26T02:00:00Z');
  const refused = await remoteFiles(centre, UTILITY, '24');
  assert.equal(refused.length, 1, 'refused bills answered at once');
  assert.deepEqual((await readRecordFile(refused[0]!)).records.map((r) => `${r.customerNo}:${r.billNo}:${r.resultCode}:${r.cardLast4}:${r.centreRef}`), [
    'K99:B0099:NR:0000:000000000000', 'K08:B0008:NC:0000:000000000000', 'K03:B0003:NR:0000:000000000000', 'K01:B0001:DP:0000:000000000000',
  ]);
  const sent32: { company: string; file: string; records: Record<string, string>[] }[] = [];
  for (const company of ['cc1', 'cc2']) for (const f of await remoteFiles(centre, company, '32')) sent32.push({ company, file: f, records: (await readRecordFile(f)).records });
  const sales = sent32.flatMap((s) => s.records);
  assert.equal(sales.length, 8);
  const k1sale = sales.find((s) => s.merchantRef === 'B0001       202611')!;
  assert.ok(k1sale, 'merchantRef is the billNo then the billingMonth');
  assert.equal(k1sale.cardNo, cards.k1);
  assert.equal(k1sale.merchantNo, UTILITY_MERCHANTS['001']);
  assert.deepEqual([k1sale.txnType, k1sale.paymentMethod, k1sale.storeCode, k1sale.terminalId, k1sale.approvalNo, k1sale.entryMode], ['10', '10', '', '', '', '']);
  assert.equal(sales.find((s) => s.merchantRef.startsWith('B0002'))!.merchantNo, UTILITY_MERCHANTS['002']);
  assert.equal(sales.find((s) => s.merchantRef.startsWith('B0011'))!.cardNo, cards.k11b, 'the changed card is charged');
  const slips = sales.filter((s) => s.useDate === '20261126').map((s) => s.slipNo);
  assert.equal(new Set(slips).size, slips.length, 'slip numbers do not repeat within a use date');

  // 3. the card companies' 33 results -> 24 by customer number
  const codeFor: Record<string, string> = { B0001: '00', B0002: '10', B0009: '11', B0010: '12', B0011: '20', B0012: '30', B0013: '90', B0014: '00' };
  for (const s of sent32) {
    const companyCode = s.company === 'cc1' ? '2000000001' : '2000000002';
    await writeRecordFile(path.join(inbound(s.company), `KEKKA_${path.basename(s.file)}`), 'sales', '33', { sender: companyCode, receiver: CENTRE, fileSeq: 1, date: '20261127' },
      s.records.map((r) => ({ ...r, resultCode: codeFor[r.merchantRef!.slice(0, 5)]!, payoutDate: '20261227' })));
  }
  // and, in the same cycle, a bill number seen in an earlier file of the same month: a duplicate too
  await writeRecordFile(path.join(inbound(UTILITY), 'SEIKYU2.dat'), 'billing', '23', { sender: UTILITY_CODE, receiver: CENTRE, fileSeq: 2, date: '20261126' }, [bill('K02', 'B0002')]);
  await run('20261127', '2026-11-27T01:00:00Z');
  const later = await Promise.all((await remoteFiles(centre, UTILITY, '24')).filter((f) => !refused.includes(f)).map(readRecordFile));
  assert.deepEqual(later.filter((r) => r.records.length === 1 && r.records[0]!.resultCode === 'DP').length, 1, 'the second file\'s duplicate answered at once');
  const lines = later.flatMap((r) => r.records).filter((r) => r.resultCode !== 'DP');
  assert.deepEqual(lines.map((r) => `${r.customerNo}:${r.billNo}:${r.resultCode}`).sort(), [
    'K01:B0001:00', 'K02:B0002:10', 'K09:B0009:11', 'K10:B0010:12', 'K11:B0011:20', 'K12:B0012:30', 'K13:B0013:90', 'K14:B0014:00',
  ]);
  assert.equal(lines.find((r) => r.billNo === 'B0001')!.cardLast4, cards.k1.slice(-4));
  assert.ok(lines.every((r) => Number(r.centreRef) > 0));

  // 4. validity: the 1st of the month is the utility's validity day: 41s with inquiryType 2
  await run('20261201', '2026-12-01T01:00:00Z');
  const v41 = [...(await remoteFiles(centre, 'cc1', '41')), ...(await remoteFiles(centre, 'cc2', '41'))];
  const asked = (await Promise.all(v41.map(readRecordFile))).flatMap((r) => r.records);
  assert.deepEqual(asked.map((r) => r.customerNo).sort(), ['K01', 'K02', 'K09', 'K10', 'K11', 'K12', 'K13', 'K14']);
  assert.ok(asked.every((r) => r.inquiryType === '2'));
  assert.equal(asked.find((r) => r.customerNo === 'K11')!.cardNo, cards.k11b);
  // answers: K09 replaced, K10 invalid, K01 new expiry, the rest unchanged
  for (const f of v41) {
    const company = f.includes(`${path.sep}cc1${path.sep}`) ? 'cc1' : 'cc2';
    const records = (await readRecordFile(f)).records.map((r) => {
      if (r.customerNo === 'K09') return { ...r, resultCode: '000', newCardNo: cards.k9new, newExpiry: '3306' };
      if (r.customerNo === 'K10') return { ...r, resultCode: 'G12' };
      if (r.customerNo === 'K01') return { ...r, resultCode: '000', newExpiry: '3207' };
      return { ...r, resultCode: '000' };
    });
    await writeRecordFile(path.join(inbound(company), `YUKO_${path.basename(f)}`), 'validity', '42', { sender: company === 'cc1' ? '2000000001' : '2000000002', receiver: CENTRE, fileSeq: 2, date: '20261202' }, records);
  }
  await run('20261202', '2026-12-02T01:00:00Z');
  const events = (await Promise.all((await remoteFiles(centre, UTILITY, '22')).filter((f) => f !== r22).map(readRecordFile))).flatMap((r) => r.records);
  assert.deepEqual(events.map((r) => `${r.customerNo}:${r.event}:${r.resultCode}:${r.cardLast4}`).sort(), [
    `K01:2:000:${cards.k1.slice(-4)}`, `K09:2:000:${cards.k9new.slice(-4)}`, `K10:3:G12:${cards.k10.slice(-4)}`,
  ]);
  // after it: K10 gets NC, K09 is charged on the new card
  await writeRecordFile(path.join(inbound(UTILITY), 'SEIKYU3.dat'), 'billing', '23', { sender: UTILITY_CODE, receiver: CENTRE, fileSeq: 3, date: '20261203' }, [
    { ...bill('K09', 'C0009', '3000', '20261203'), billingMonth: '202612' }, { ...bill('K10', 'C0010', '3000', '20261203'), billingMonth: '202612' },
  ]);
  await run('20261203', '2026-12-03T01:00:00Z');
  const all24 = await Promise.all((await remoteFiles(centre, UTILITY, '24')).map(readRecordFile));
  assert.ok(all24.flatMap((r) => r.records).some((r) => r.customerNo === 'K10' && r.billNo === 'C0010' && r.resultCode === 'NC'));
  const new32 = (await Promise.all((await remoteFiles(centre, 'cc1', '32')).map(readRecordFile))).flatMap((r) => r.records).filter((r) => r.merchantRef.startsWith('C0009'));
  assert.equal(new32.length, 1);
  assert.equal(new32[0]!.cardNo, cards.k9new);

  // 5. the vault: history, audit, no plain number in the ledger
  const c = await openCentre(centre.configFile, { log: quiet() });
  try {
    const db = c.ledger.db;
    const history = await db('utility_card_history').where({ partner_id: UTILITY, customer_no: 'K09' }).orderBy('id');
    assert.equal(history.length, 2);
    assert.ok(history[0].valid_to && /validity/.test(history[0].ended_by));
    assert.equal(history[1].masked_card_no, `411111******${cards.k9new.slice(-4)}`);
    const audit = await db('vault_audit').select('job', 'file_id', 'count');
    assert.ok(audit.some((a: { job: string }) => a.job === 'route') && audit.some((a: { job: string }) => a.job === 'utility-validity'));
    const packed = (await db('utility_bill_batches')).map((b: { records: Buffer }) => b.records.toString('latin1')).join('');
    await materializeUtilityBills(c.ledger);
    const dump = JSON.stringify(await db('utility_customers')) + JSON.stringify(await db('utility_card_history')) + JSON.stringify(await db('utility_bills')) + JSON.stringify(await db('sent_records')) + packed;
    for (const n of wholeNumbers) assert.ok(!dump.includes(n), 'no plain card number in the ledger tables');
    // every forwarded bill got exactly one answer
    const bills = await db('utility_bills').select('bill_no', 'answer_file_id');
    assert.equal(bills.filter((b: { answer_file_id: string | null }) => !b.answer_file_id).length, 1, 'only the December bill waits for its result');
    // the December bill has had no result for more than the card company's 48 hours: reported
    const savedNow = process.env.TSUNAGI_NOW;
    process.env.TSUNAGI_NOW = '2026-12-06T03:00:00Z';
    try {
      const summary = await runReconciliation(makeJobContext(c, async () => undefined), '20261205');
      assert.equal(summary.counts['bill without result'], 1);
      const csv = await readFile(summary.reportPath, 'utf8');
      assert.match(csv, /bill without result,1,300000000000001,.*u-denki customer K09 bill 202612\/C0009/);
    } finally {
      if (savedNow === undefined) delete process.env.TSUNAGI_NOW;
      else process.env.TSUNAGI_NOW = savedNow;
    }
  } finally {
    await c.close();
  }
  if (runner === cycle) {
    // the operator's view: masked card and history, never a whole number
    const { stdout } = await run_(process.execPath, [TSUNAGI_BIN, 'utility', 'show', '--customer', 'K09', '--config', centre.configFile], { env: { ...process.env, ...env } });
    assert.match(stdout, /u-denki customer K09: active, card 411111\*+\d{4}/);
    assert.match(stdout, /replaced by a validity check/);
    for (const n of wholeNumbers) assert.ok(!stdout.includes(n));
    logs.push(stdout);
  }

  // 6. no whole card number in anything the utility got, any notice, report or log line
  const scanned = [...(await allFiles(centre.remote(UTILITY))), ...(await allFiles(path.join(centre.dir, 'spool'))).filter((f) => /reports|T91_|T22_|T24_/.test(f) && !f.includes(`${path.sep}work${path.sep}`))];
  assert.ok(scanned.length >= 6);
  for (const f of scanned) {
    const text = (await readFile(f)).toString('latin1');
    for (const n of wholeNumbers) assert.ok(!text.includes(n), `${f} holds a whole card number`);
  }
  const logText = logs.join('\n');
  assert.ok(logText.includes('utility bills converted'));
  for (const n of wholeNumbers) assert.ok(!logText.includes(n), 'a log line holds a whole card number');
  return centre;
}

describe('utility billing flows through tsunagi cycle', () => {
  const made: TestCentre[] = [];
  after(async () => {
    if (!process.env.TSUNAGI_KEEP) for (const c of made) await rm(c.dir, { recursive: true, force: true });
  });

  it('SQLite, each cycle a `tsunagi cycle` process: registration, billing, validity', { timeout: 300_000 }, async () => {
    made.push(await flows(undefined, cycle));
  });

  it('PostgreSQL, the same cycles in this process: registration, billing, validity', { timeout: 300_000 }, async () => {
    const name = `tsunagi_t_${randomBytes(6).toString('hex')}`;
    const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL });
    await admin.raw(`create database ${name}`);
    try {
      made.push(await flows(PG_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`), cycleInProcess));
    } finally {
      if (process.env.TSUNAGI_KEEP) console.log(`# kept database ${name}`);
      else await admin.raw(`drop database if exists ${name} with (force)`);
      await admin.destroy();
    }
  });
});
