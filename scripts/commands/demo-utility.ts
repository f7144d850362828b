// The utility part of `tsunagi demo`: u-city (a city's electricity and water) registers 20
// customers' cards, the monthly validity check finds one card replaced and one invalid, the bills
// go out by customer number (the one with the invalid card refused at once, NC), and the card
// company's results come back as a 24 by customer number.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { luhnCheckDigit, readFieldRecords, writeFieldRecords } from '../../formats/index.ts';
import { writeNewKekFile } from '../../spool/keys.ts';
import type { Engine } from '../../jobs/engine.ts';
import { runCycle } from '../../jobs/cycle.ts';

export const DEMO_UTILITY = 'u-city';
const CODE = '3000000001';
const MERCHANTS: Record<string, string> = { '001': '300000000000001', '002': '300000000000002' };
const CUSTOMERS = 20;
const customerNo = (i: number) => `K${String(i).padStart(4, '0')}`;
const cardOf = (i: number, v = 0) => { const body = `${i % 2 ? '411111' : '555555'}${String(v * 1000 + i).padStart(9, '0')}`; return body + luhnCheckDigit(body); };

/** Adds u-city (and, to a config without encryption at rest, the vault's own KEK file) to the demo's config. */
export async function addDemoUtility(configFile: string, keysDir: string): Promise<void> {
  const doc = parseDocument(await readFile(configFile, 'utf8'));
  // The starter config encrypts at rest: the vault shares that key. Only an older config gets its own.
  if (!doc.has('encryption')) {
    await writeNewKekFile(path.join(keysDir, 'vault_kek'));
    doc.set('vault', doc.createNode({ kek: { file: './keys/vault_kek' } }));
  }
  doc.addIn(['partners'], doc.createNode({
    id: DEMO_UTILITY, name: 'CITY POWER AND WATER', role: 'utility', code: CODE, send: ['21', '23'], receive: ['22', '24', '91'],
    delivery: { protocol: 'local', path: `./remote/${DEMO_UTILITY}` },
    utility: { merchantNos: MERCHANTS, validity: { schedule: '0 1 * * *' } },
  }));
  await writeFile(configFile, String(doc));
}

async function writeFamilyFile(out: string, family: string, fileType: string, sender: string, fileSeq: number, date: string, records: Record<string, string>[]): Promise<void> {
  writeFieldRecords(out, family, { fileType, senderCode: sender, receiverCode: '0000000001', createdDate: date, fileSeq: String(fileSeq) }, records);
}

const records = async (file: string) => (await readFieldRecords(file)).records;

/** Before the nightly cycle: u-city's 21 registering 20 customers (the cycle applies it and, u-city's validity day being every day, sends the 41). */
export async function dropDemoRegistration(spoolRoot: string, today: string): Promise<string> {
  const regs = Array.from({ length: CUSTOMERS }, (_, k) => ({
    action: '1', customerNo: customerNo(k + 1), cardCompanyCode: k % 2 ? '002' : '001', cardNo: cardOf(k + 1), expiry: '3012', holderName: 'ｼﾐﾝ ﾀﾛｳ', applicationDate: today,
  }));
  const name = 'TOROKU_001.dat';
  await mkdir(path.join(spoolRoot, 'partners', DEMO_UTILITY, 'inbound'), { recursive: true });
  await mkdir(path.join(spoolRoot, '..', 'remote', DEMO_UTILITY), { recursive: true });
  await writeFamilyFile(path.join(spoolRoot, 'partners', DEMO_UTILITY, 'inbound', name), 'registration', '21', CODE, 1, today, regs);
  return `${DEMO_UTILITY}/inbound/${name}: 21, ${CUSTOMERS} card registrations`;
}

/** After the nightly cycle: validity answers, the month's bills, the card company's results. Returns lines to print. */
export async function runDemoUtility(engine: Engine, spoolRoot: string, ccAlphaReceived: string, remoteDir: string, today: string): Promise<string[]> {
  const lines: string[] = [];
  const ccInbound = path.join(spoolRoot, 'partners', 'cc-alpha', 'inbound');
  const utilityOut = path.join(remoteDir, DEMO_UTILITY);
  const seen = new Set<string>();
  const newFiles = async (dir: string, prefix: string) => {
    const names = (await readdir(dir)).filter((n) => n.startsWith(prefix) && !seen.has(path.join(dir, n))).sort();
    for (const n of names) seen.add(path.join(dir, n));
    return names.map((n) => path.join(dir, n));
  };
  const describe24 = async (files: string[]) => {
    for (const f of files) {
      const rs = await records(f);
      const codes = new Map<string, number>();
      for (const r of rs) codes.set(r.resultCode!, (codes.get(r.resultCode!) ?? 0) + 1);
      lines.push(`  ${DEMO_UTILITY} got ${path.basename(f)} (24): ${[...codes].map(([c, n]) => `${n} x ${c}`).join(', ')}${rs.filter((r) => r.resultCode !== '00').map((r) => ` [${r.customerNo} ${r.billNo} ${r.resultCode}]`).join('')}`);
    }
  };
  const registered = await newFiles(utilityOut, 'T22_');
  for (const f of registered) lines.push(`  ${DEMO_UTILITY} got ${path.basename(f)} (22): ${(await records(f)).filter((r) => r.resultCode === '000').length} of ${CUSTOMERS} cards registered`);

  // the validity check: cc-alpha got a 41 (inquiryType 2) for every card on file and answers
  const asked = (await newFiles(ccAlphaReceived, 'T41_')).filter((f) => f.endsWith(`_${DEMO_UTILITY}.dat`));
  const answers = (await Promise.all(asked.map(records))).flat().map((r) => {
    if (r.customerNo === customerNo(7)) return { ...r, resultCode: '000', newCardNo: cardOf(7, 1), newExpiry: '3306' }; // reissued card
    if (r.customerNo === customerNo(13)) return { ...r, resultCode: 'G12' }; // invalid
    return { ...r, resultCode: '000' };
  });
  lines.push(`  cc-alpha got the validity check of ${answers.length} cards and answers: ${customerNo(7)} has a new card, ${customerNo(13)}'s card is invalid (G12)`);
  await writeFamilyFile(path.join(ccInbound, 'YUKO_KAITO.dat'), 'validity', '42', '2000000001', 11, today, answers);
  await runCycle(engine, { date: today });
  for (const f of await newFiles(utilityOut, 'T22_')) {
    for (const r of await records(f)) lines.push(`  ${DEMO_UTILITY} got ${path.basename(f)} (22): ${r.customerNo} event ${r.event === '2' ? '2 card updated' : '3 card invalid'} (${r.resultCode.trim()}), card now ...${r.cardLast4}`);
  }

  // the month's bills, by customer number
  const month = today.slice(0, 6);
  const bills = Array.from({ length: CUSTOMERS }, (_, k) => ({ customerNo: customerNo(k + 1), billingMonth: month, billingKind: k % 3 ? '1' : '3', amount: String(3000 + k * 137), useDate: today, billNo: `${month.slice(2)}${String(k + 1).padStart(8, '0')}` }));
  await writeFamilyFile(path.join(spoolRoot, 'partners', DEMO_UTILITY, 'inbound', 'SEIKYU_001.dat'), 'billing', '23', CODE, 1, today, bills);
  lines.push(`  ${DEMO_UTILITY} sent SEIKYU_001.dat (23): ${CUSTOMERS} bills by customer number`);
  await runCycle(engine, { date: today });
  await describe24(await newFiles(utilityOut, 'T24_'));
  const sales = (await newFiles(ccAlphaReceived, 'T32_'));
  const utilitySales = (await Promise.all(sales.map(records))).flat().filter((r) => Object.values(MERCHANTS).includes(r.merchantNo!));
  lines.push(`  cc-alpha got ${utilitySales.length} sales of ${DEMO_UTILITY} in its 32 (merchant numbers ${Object.values(MERCHANTS).join(', ')}); ${customerNo(7)}'s on the new card ...${cardOf(7, 1).slice(-4)}`);

  // the card company's results come back as a 24 by customer number
  await writeFamilyFile(path.join(ccInbound, 'KEKKA_KOKYO.dat'), 'sales', '33', '2000000001', 12, today, utilitySales.map((r) => ({ ...r, resultCode: '00', payoutDate: today })));
  await runCycle(engine, { date: today });
  await describe24(await newFiles(utilityOut, 'T24_'));
  return lines;
}
