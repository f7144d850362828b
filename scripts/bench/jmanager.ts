// Benchmark of Jmanager and reconciliation (issue 5, item 6): terminal transactions over the 30
// days of June 2024 for 100 head offices (10 stores x 5 terminals each, 5 card companies), one 81
// file per day; then the time to load them, to build every head office's M file for June, and to
// reconcile one day against a 31 side planted with differences; peak RSS. SQLite ledger.
// Run: BENCH_RECORDS=10000000 node --import tsx scripts/bench/jmanager.ts   (BENCH_DIR to keep files)
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { seededRandom } from '../../formats/index.ts';
import { openCentre } from '../../jobs/centre.ts';
import { makeJobContext } from '../../jobs/runtime.ts';
import { createLogger } from '../../jobs/log.ts';
import { loadTerminalFile } from '../../jobs/terminal.ts';
import { buildDueJmanagerFiles } from '../../jobs/jmanager/build.ts';
import { runReconciliation } from '../../jobs/reconcile/run.ts';
import { addDays } from '../../jobs/jmanager/periods.ts';
import { writeTerminalFile, type TerminalRecord } from '../lib/terminal-file.ts';
import { readTerminalDay } from '../../jobs/terminal/pack.ts';
import { SqliteBatchInsert, withRawSqlite } from '../../spool/ledger/sqlite-raw.ts';

const N = Number(process.env.BENCH_RECORDS ?? 10_000_000);
const DAYS = 30;
const HEAD_OFFICES = 100;
const dir = process.env.BENCH_DIR ?? mkdtempSync(path.join(tmpdir(), 'tsunagi-bench-jm-'));
mkdirSync(dir, { recursive: true });
const merchantNo = (h: number) => `5${String(h).padStart(14, '0')}`;
const rssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);
const secs = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
/** CPU seconds of this process since `c0` (the machine is shared: wall time moves with its load). */
const cpuSecs = (c0: NodeJS.CpuUsage) => { const c = process.cpuUsage(c0); return (c.user + c.system) / 1e6; };
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');

const partners = Array.from({ length: HEAD_OFFICES }, (_, h) => `  - { id: ho-${h}, name: HO ${h}, role: merchant, code: "${String(1_000_000_000 + h)}", merchantNos: ["${merchantNo(h)}"], jmanagerCycles: [M] }`).join('\n');
writeFileSync(path.join(dir, 'tsunagi.yaml'), `centre: { code: "0000000001", name: BENCH }
spoolRoot: ./spool
ledger: sqlite:./ledger.db
partners:
${partners}
  - { id: cc, name: CARD, role: card-company, code: "2000000001", cardCompanyCodes: ["001", "002", "003", "004", "005"] }
  - { id: online, name: ONLINE, role: online-centre, code: "9000000001", send: ["81"] }
`);

function* day(date: string, count: number, seed: number): Generator<TerminalRecord> {
  const rnd = seededRandom(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const slips = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const h = int(HEAD_OFFICES);
    const store = int(10);
    const terminalId = `T${String(h).padStart(3, '0')}${store}${int(5)}`;
    const slip = (slips.get(terminalId) ?? 0) + 1; // unique per terminal and day, as terminals number them
    slips.set(terminalId, slip);
    const r = int(100);
    yield {
      merchantNo: merchantNo(h), storeCode: `S${String(store).padStart(3, '0')}`, terminalId, txnDate: date, slipNo: String(slip % 100_000).padStart(5, '0'),
      cardCompanyCode: `00${1 + int(5)}`, paymentKind: r < 75 ? '1' : r < 85 ? '2' : r < 90 ? '3' : '4', txnType: r % 20 === 0 ? '20' : r % 20 === 1 ? '30' : '10',
      paymentMethod: r < 80 ? '10' : r < 90 ? '80' : '21', installments: '00', amount: 100 + int(50_000), approvalNo: r === 99 ? '' : String(1_000_000 + int(8_999_999)), cardNo: '4111111111111111',
    };
  }
}

const days = Array.from({ length: DAYS }, (_, i) => addDays('20240601', i));
const perDay = Math.ceil(N / DAYS);
const g0 = process.hrtime.bigint();
const files = days.map((d, i) => {
  const p = path.join(dir, `J81_${d}.dat`);
  writeTerminalFile(day(d, Math.min(perDay, N - i * perDay), i + 1), { createdDate: addDays(d, 1), fileSeq: i + 1 }, p);
  return p;
});
console.log(`generated ${N} terminal transactions in ${DAYS} files: ${secs(g0).toFixed(1)} s (not part of the figures)`);

const centre = await openCentre(path.join(dir, 'tsunagi.yaml'), { log: createLogger({ level: 'warn' }) });
const ctx = makeJobContext(centre, async () => undefined, () => new Date('2024-07-01T01:00:00Z'));
try {
  const l0 = process.hrtime.bigint();
  const lc0 = process.cpuUsage();
  let loaded = 0;
  for (const [i, p] of files.entries()) {
    const id = `IBENCH${String(i).padStart(4, '0')}`;
    await centre.files.create({ id, partner_id: 'online', direction: 'in', file_type: '81', name: path.basename(p), path: p, size: null, sha256: null, sender_code: '9000000001', receiver_code: null, file_seq: String(i + 1).padStart(6, '0'), business_date: null, record_count: null, accepted_count: null, rejected_count: null, amount_total: null, parent_id: null, state: 'accepted' }, 'bench');
    loaded += await loadTerminalFile(ctx, (await centre.files.get(id))!);
  }
  const loadS = secs(l0);
  const loadCpu = cpuSecs(lc0);
  const aggRows = Number((await centre.ledger.db('jm_aggregates').count({ n: '*' }))[0]!.n);
  console.log(`load: ${loaded} records in ${loadS.toFixed(1)} s = ${Math.round(loaded / loadS)} records/s, ${loadCpu.toFixed(1)} s CPU = ${Math.round(loaded / loadCpu)} records per CPU second (${aggRows} aggregate rows); peak RSS so far ${rssMb()} MB; load average ${load()}`);

  const b0 = process.hrtime.bigint();
  const bc0 = process.cpuUsage();
  const built = await buildDueJmanagerFiles(ctx, '20240701');
  const rows = built.reduce((s, b) => s + b.dataRows, 0);
  console.log(`M files: ${built.length} files, ${rows} rows in ${secs(b0).toFixed(1)} s (${cpuSecs(bc0).toFixed(1)} s CPU); peak RSS so far ${rssMb()} MB`);

  // The 31 side of one day: every authorised transaction submitted, but for planted differences.
  const D = '20240615';
  const db = centre.ledger.db;
  await centre.files.create({ id: 'O32BENCH', partner_id: 'cc', direction: 'out', file_type: '32', name: 'x', path: null, size: null, sha256: null, sender_code: null, receiver_code: null, file_seq: null, business_date: null, record_count: null, accepted_count: null, rejected_count: null, amount_total: null, parent_id: null, state: 'sent' }, 'bench');
  // Every authorised transaction of the day but one in 1,000 submitted, one in 1,000 with its amount
  // changed; a transaction's centreRef is its number in load order (what terminal_txns' id was).
  const before = (await db('terminal_loads').where('file_id', '<', `IBENCH${String(days.indexOf(D)).padStart(4, '0')}`).sum({ n: 'record_count' }).first()) as { n: unknown };
  const txns = await readTerminalDay(centre.ledger, D);
  await withRawSqlite(centre.ledger, (conn) => {
    const insert = new SqliteBatchInsert(conn, 'sent_records', ['centre_ref', 'file_id', 'source_file_id', 'card_company_code', 'merchant_no', 'terminal_id', 'slip_no', 'use_date', 'txn_type', 'amount', 'approval_no', 'masked_card_no', 'centre_date']);
    conn.exec('begin');
    for (let i = 0; i < txns.length; i++) {
      const t = txns.row(i);
      const id = Number(before.n ?? 0) + i + 1;
      if (t.approval_no === '' || id % 1000 === 7) continue;
      insert.add([id, 'O32BENCH', 'I31BENCH', t.card_company_code, t.merchant_no, t.terminal_id, t.slip_no, t.txn_date, t.txn_type, t.amount + (id % 1000 === 11 ? 1 : 0), t.approval_no, t.masked_card_no, t.txn_date]);
    }
    insert.end();
    conn.exec('commit');
  });
  const submitted = Number((await db('sent_records').where('use_date', D).count({ n: '*' }))[0]!.n);
  const r0 = process.hrtime.bigint();
  const rc0 = process.cpuUsage();
  const summary = await runReconciliation(ctx, D);
  console.log(`reconcile ${D}: ${submitted} submitted vs ${perDay} terminal transactions in ${secs(r0).toFixed(1)} s (${cpuSecs(rc0).toFixed(1)} s CPU): ${JSON.stringify(Object.fromEntries(Object.entries(summary.counts).filter(([, n]) => n)))}`);
  console.log(`peak RSS ${rssMb()} MB; load average ${load()}`);
} finally {
  await centre.close();
  if (!process.env.BENCH_DIR) rmSync(dir, { recursive: true, force: true });
}
