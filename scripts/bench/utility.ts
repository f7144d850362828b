// Utility billing benchmark: a utility with N registered customers (default 1,000,000) sends a
// month's 23 of N bills. Measured, in one process on SQLite (embedded runner, no worker threads):
//   - conversion and routing: the route job of the accepted 23 (vault lookups, AES-256-GCM
//     decryption, ID conversion into an internal 31, split into per-company 32 files with
//     centreRefs, sent_records and utility_bills), in bills/s;
//   - baseline in the same run: the route job of an ordinary merchant 31 of N sales (split into
//     32s, sent_records), so the ratio says what the vault and ID conversion cost;
//   - the monthly validity run: 41s (inquiryType 2) for every card on file, in s;
//   - peak RSS (maxRSS) of the process that routes and runs validity.
// Setup (sealing N cards into the vault, generating the files, ingest) is timed but not judged; it
// runs in this process, and the measured phases in a child process of their own (`--measure`), so
// that the peak RSS is theirs and not the setup's. Each phase also prints its CPU time (all threads),
// which a loaded machine inflates far less than wall time.
//
//   node --import tsx scripts/bench/utility.ts            1,000,000 customers and bills
//   BENCH_N=100000 node --import tsx scripts/bench/utility.ts
//   BENCH_SETUP=/some/dir ...   keeps the set-up centre there (sealing 1M cards takes minutes) and
//                               copies it for the next run with the same N, for ABAB comparisons
//   BENCH_ONLY=conversion ...   measures only the 23's route (no baseline, no validity run)
//   BENCH_MEASURE_ARGS="--cpu-prof --cpu-prof-dir=DIR" ...   node options of the measuring process only
import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { generateFile, maskCardNumber, luhnCheckDigit } from '../../formats/index.ts';
import { customerNoOf } from '../../formats/generate.ts';
import { openCentre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { makeJobContext } from '../../jobs/runtime.ts';
import { HANDLERS } from '../../jobs/handlers/index.ts';
import { runValidity } from '../../jobs/utility/validity.ts';
import { vaultOf } from '../../jobs/utility/common.ts';
import { withRawSqlite, SqliteBatchInsert } from '../../spool/ledger/sqlite-raw.ts';
import { makeTestCentre, merchantCode, merchantNo } from '../../test/helpers/centre.ts';

const N = Number(process.env.BENCH_N ?? 1_000_000);
const UTILITY = 'u-bench';
const rss = () => Math.round(process.resourceUsage().maxRSS / 1024);
/** Peaks of V8's heap and of Buffer memory, sampled every 50 ms: where the peak RSS comes from. */
const memoryPeaks = { heap: 0, arrayBuffers: 0 };
const MB = (n: number) => Math.round(n / 1048576);
function sampleMemory(): void {
  const m = process.memoryUsage();
  memoryPeaks.heap = Math.max(memoryPeaks.heap, m.heapTotal);
  memoryPeaks.arrayBuffers = Math.max(memoryPeaks.arrayBuffers, m.arrayBuffers);
}
const peaks = () => `heap ${MB(memoryPeaks.heap)} MB, buffers ${MB(memoryPeaks.arrayBuffers)} MB at most`;
const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });
const secs = (ms: number) => (ms / 1000).toFixed(2);
const cpuMs = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; };
/** CPU time of this process's main thread alone (Linux: /proc/self/task/PID/stat), in ms; 0 elsewhere. */
function mainThreadCpuMs(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return 0;
  }
}
const loadavg = async () => (await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ');

interface Setup { dir: string; configFile: string; billsId: string; merchantId: string; kek: string }

async function main(): Promise<void> {
  process.env.TSUNAGI_NOW = '2026-11-30T15:30:00Z'; // 00:30 JST on 1 December
  const cache = process.env.BENCH_SETUP ? path.join(process.env.BENCH_SETUP, `n${N}`) : undefined;
  let setup: Setup;
  if (cache && existsSync(path.join(cache, 'setup.json'))) {
    const saved = JSON.parse(await readFile(path.join(cache, 'setup.json'), 'utf8')) as Setup;
    const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-centre-'));
    await cp(path.join(cache, 'centre'), dir, { recursive: true });
    setup = { ...saved, dir, configFile: path.join(dir, path.basename(saved.configFile)) };
    process.env.TSUNAGI_BENCH_KEK = saved.kek;
    const copied = await openCentre(setup.configFile, { log: quiet() });
    await copied.ledger.db.raw('update files set path = ? || substr(path, ?) where path like ?', [dir, saved.dir.length + 1, `${saved.dir}/%`]); // the ledger keeps absolute paths
    await copied.close();
    console.log(`utility benchmark: ${N.toLocaleString()} customers, ${N.toLocaleString()} bills; SQLite; set-up centre copied from ${cache}; load average ${await loadavg()}`);
  } else {
    setup = await setUp();
    if (cache) {
      await rm(cache, { recursive: true, force: true });
      await cp(setup.dir, path.join(cache, 'centre'), { recursive: true });
      await writeFile(path.join(cache, 'setup.json'), JSON.stringify(setup));
    }
  }
  process.env.TSUNAGI_BENCH_KEK = setup.kek;
  const extra = (process.env.BENCH_MEASURE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawnSync(process.execPath, [...process.execArgv, ...extra, fileURLToPath(import.meta.url), '--measure', setup.configFile, setup.billsId, setup.merchantId], { stdio: 'inherit', env: process.env });
  if (!process.env.BENCH_KEEP) await rm(setup.dir, { recursive: true, force: true });
  if (child.status !== 0) throw new Error(`the measuring process ended with ${child.status ?? child.signal}`);
}

/** A centre with N customers in the vault, and the accepted 23 and 31 to route. */
async function setUp(): Promise<Setup> {
  const kek = randomBytes(32).toString('hex');
  process.env.TSUNAGI_BENCH_KEK = kek;
  const def = await makeTestCentre({
    merchants: 1, companies: 2,
    extraPartnerYaml: [
      `  - { id: ${UTILITY}, name: BENCH POWER, role: utility, code: "3000000001", send: ["21", "23"], receive: ["22", "24", "91"], delivery: { protocol: local, path: ./remote/${UTILITY} },`,
      '      utility: { merchantNos: { "001": "300000000000001", "002": "300000000000002" } } }',
      'vault: { kek: { env: TSUNAGI_BENCH_KEK } }',
    ].join('\n'),
  });
  const cfgText = await readFile(def.configFile, 'utf8');
  await writeFile(def.configFile, cfgText.replace('workers: { concurrency: 2 }', 'workers: { concurrency: 1, threads: 0 }'));
  await mkdir(path.join(def.dir, 'spool', 'partners', UTILITY, 'inbound'), { recursive: true });
  await mkdir(def.remote(UTILITY), { recursive: true });
  const centre = await openCentre(def.configFile, { log: quiet() });
  const ctx = makeJobContext(centre, async () => undefined);
  console.log(`utility benchmark: ${N.toLocaleString()} customers, ${N.toLocaleString()} bills; SQLite; load average ${await loadavg()}`);

  // setup: N cards sealed into the vault
  let t = Date.now();
  const vault = await vaultOf(centre);
  const columns = ['partner_id', 'customer_no', 'state', 'card_company_code', 'card_hmac', 'card_enc', 'key_id', 'masked_card_no', 'card_last4', 'since', 'updated_at'] as const;
  const at = Date.now();
  for (let start = 0; start < N; start += 20_000) {
    const n = Math.min(20_000, N - start);
    const items = Array.from({ length: n }, (_, k) => {
      const i = start + k;
      const body = `4${String(11111000000000 + i).padStart(14, '0')}`;
      return { partnerId: UTILITY, customerNo: customerNoOf(i), card: { cardNo: body + luhnCheckDigit(body), expiry: '3012' } };
    });
    const sealed = vault.sealMany(items);
    await withRawSqlite(centre.ledger, (conn) => {
      conn.exec('begin immediate');
      const ins = new SqliteBatchInsert(conn, 'utility_customers', columns);
      items.forEach((it, k) => ins.add([UTILITY, it.customerNo, 'active', (start + k) % 2 ? '002' : '001', vault.hmac(it.card.cardNo), sealed[k]!.enc, sealed[k]!.keyId, maskCardNumber(it.card.cardNo), it.card.cardNo.slice(-4), at, at]));
      ins.end();
      conn.exec('commit');
    });
  }
  const sealMs = Date.now() - t;
  console.log(`setup: ${N.toLocaleString()} cards sealed into the vault in ${secs(sealMs)} s; peak RSS ${rss()} MB`);

  // the files: a 23 of N bills, and the baseline merchant 31 of N sales
  t = Date.now();
  await generateFile('23', { records: N, seed: 7, senderCode: '3000000001', receiverCode: '0000000001', createdDate: '20261130', out: path.join(def.dir, 'spool', 'partners', UTILITY, 'inbound', 'SEIKYU.dat') });
  await generateFile('31', { records: N, seed: 8, merchantNo: merchantNo(0), senderCode: merchantCode(0), receiverCode: '0000000001', cardCompanyCodes: ['001', '002'], createdDate: '20261130', out: path.join(def.dir, 'spool', 'partners', 'm001', 'inbound', 'URIAGE.dat') });
  await HANDLERS.scan({}, ctx);
  const files = await centre.files.list({ direction: 'in' });
  for (const f of files) await HANDLERS.ingest({ fileId: f.id }, ctx);
  console.log(`setup: files generated, scanned and validated in ${secs(Date.now() - t)} s; peak RSS ${rss()} MB`);
  const bills = files.find((f) => f.partner_id === UTILITY)!;
  const merchant = files.find((f) => f.partner_id === 'm001')!;

  await centre.close();
  return { dir: def.dir, configFile: def.configFile, billsId: bills.id, merchantId: merchant.id, kek };
}

/** The measured phases, in a process of their own: the baseline route, the 23's route, the validity run. */
async function measure(configFile: string, billsId: string, merchantId: string): Promise<void> {
  const centre = await openCentre(configFile, { log: quiet() });
  const ctx = makeJobContext(centre, async () => undefined);
  setInterval(sampleMemory, 50).unref();
  if (process.env.BENCH_MEM_TRACE) setInterval(() => { const m = process.memoryUsage(); console.log(`mem: rss ${MB(m.rss)} heapUsed ${MB(m.heapUsed)} heapTotal ${MB(m.heapTotal)} external ${MB(m.external)} arrayBuffers ${MB(m.arrayBuffers)}`); }, 1000).unref();
  console.log(`measuring process: peak RSS ${rss()} MB after start; load average ${await loadavg()}`);
  const only = process.env.BENCH_ONLY;
  let t = Date.now();
  let c = cpuMs();
  if (only !== 'conversion') await HANDLERS.route({ fileId: merchantId }, ctx);
  const baseMs = Date.now() - t;
  const baseCpu = cpuMs() - c;
  if (only !== 'conversion') console.log(`baseline: route of a merchant 31 of ${N.toLocaleString()} sales in ${secs(baseMs)} s (cpu ${secs(baseCpu)} s): ${Math.round(N / (baseMs / 1000)).toLocaleString()} records/s; peak RSS ${rss()} MB; load average ${await loadavg()}`);

  t = Date.now();
  c = cpuMs();
  const mainCpu = mainThreadCpuMs();
  await HANDLERS.route({ fileId: billsId }, ctx);
  const routeMs = Date.now() - t;
  const routeCpu = cpuMs() - c;
  const routeMainCpu = mainThreadCpuMs() - mainCpu;
  const routed = await centre.files.get(billsId);
  const out = await centre.files.list({ parentId: billsId });
  const forwarded = out.filter((f) => f.file_type === '32').reduce((a, f) => a + Number(f.record_count), 0);
  console.log(`conversion + routing: ${N.toLocaleString()} bills (${forwarded.toLocaleString()} forwarded, state ${routed?.state}) in ${secs(routeMs)} s (cpu ${secs(routeCpu)} s, of it the main thread ${secs(routeMainCpu)} s): ${Math.round(N / (routeMs / 1000)).toLocaleString()} bills/s, ${Math.round(N / (routeCpu / 1000)).toLocaleString()} per cpu-second (target 200,000); ${only === 'conversion' ? '' : `${(routeMs / baseMs).toFixed(2)}x the baseline's time, ${(routeCpu / baseCpu).toFixed(2)}x its cpu; `}peak RSS ${rss()} MB (${peaks()}); load average ${await loadavg()}`);

  if (only === 'conversion') return centre.close();
  t = Date.now();
  c = cpuMs();
  const ids = await runValidity(ctx, centre.partner(UTILITY), '20261201');
  const validityMs = Date.now() - t;
  const validityCpu = cpuMs() - c;
  const asked = (await Promise.all(ids.map((id) => centre.files.get(id)))).reduce((a, f) => a + Number(f?.record_count ?? 0), 0);
  console.log(`validity run: ${asked.toLocaleString()} cards into ${ids.length} 41 files in ${secs(validityMs)} s (cpu ${secs(validityCpu)} s; target 30 s); peak RSS ${rss()} MB (target 300 MB); load average ${await loadavg()}`);
  await centre.close();
}

const at = process.argv.indexOf('--measure');
if (at >= 0) await measure(process.argv[at + 1]!, process.argv[at + 2]!, process.argv[at + 3]!);
else await main();
