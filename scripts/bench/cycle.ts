// Cycle benchmark: N merchants x M records of 31 sales through scan, ingest (validate), route
// (split into per-company 32 files, convert, record what was sent) and deliver (local) to 5 card
// companies, on the embedded runner and on BullMQ with 1 and with 2 `tsunagi worker` processes.
// Prints wall time, records/s, inbound files/s, CPU per inbound file (embedded: every thread of
// this process; BullMQ: the worker processes, and how many cores they kept busy), peak RSS, the
// 2-workers/1-worker ratio, and the formats engine's validate+split rate over the same files in
// the same run (the baseline).
//
//   npx tsx scripts/bench/cycle.ts                    200 merchants x 5,000 records (1,000,000)
//   BENCH_MERCHANTS=50 BENCH_RECORDS=2000 npx tsx scripts/bench/cycle.ts
//   npx tsx scripts/bench/cycle.ts --profile [DIR]    also writes V8 CPU profiles of this process
//                                                     and its worker threads (the embedded runner
//                                                     and its thread pool; not BullMQ's worker
//                                                     processes) to DIR (default ./cycle-profile)
//                                                     and prints the top entries (of the timed
//                                                     window only: DIR/timed.json); open a
//                                                     .cpuprofile in Chrome DevTools (Performance)
//                                                     for the call tree
//
// The merchants' files are generated once per size and kept in $TMPDIR/tsunagi-bench-cycle-MxR
// (BENCH_FRESH=1 generates them again). Card company 5 takes the EBCDIC mainframe 32.
//
// BENCH_MODES may also name embedded:normal (a SQLite ledger with ?synchronous=normal: no fsync
// per commit), and any mode with +enc (embedded+enc, bullmq1+enc): the centre encrypts its spool
// at rest (spool/encrypted-file.ts); the encrypted/plain ratio of each pair is printed. A mode
// named twice runs twice (interleave them against drift under load); the median is reported:
//   BENCH_MERCHANTS=20 BENCH_RECORDS=2000 BENCH_NO_BASELINE=1 \
//     BENCH_MODES=embedded,embedded+enc,embedded,embedded+enc,embedded,embedded+enc npx tsx scripts/bench/cycle.ts
// BENCH_PG=1 puts each run's ledger in a fresh PostgreSQL database (BENCH_PG_URL, default the
// machine's test database's server). Other knobs: BENCH_MODES (default embedded,bullmq1,bullmq2), BENCH_REDIS_URL (default
// redis://127.0.0.1:6379/9; the DB is flushed), BENCH_CONCURRENCY (jobs per kind per process;
// default the config's 2), BENCH_THREADS (workers.threads, both runners; default the config's 2),
// BENCH_KEEP=1 keeps the centres. Each embedded run is a process of its own, started from the bundle
// as bin/tsunagi.js starts the CLI (TSUNAGI_CLI_TSX=1: under tsx), which prints its peak RSS.
// The timer starts when the scan is enqueued (workers already up, files already generated) and
// stops when every inbound file is routed and every outbound file sent.
import { spawnSync } from 'node:child_process';
import { appendFile, copyFile, mkdir, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { openCentre, type Centre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { createLogger } from '../../jobs/log.ts';
import { BullmqQueues, redisConnection } from '../../jobs/runners/bullmq.ts';
import knexFactory from 'knex';
import { makeTestCentre, dropSalesFiles, type TestCentre } from '../../test/helpers/centre.ts';
import { cycleDone, killWorker, sleep, startWorker, type WorkerProcess } from '../../test/helpers/crash.ts';
import { splitFile, validateFile } from '../../formats/index.ts';
import { companyCode } from '../../test/helpers/centre.ts';
import { printTop, profileFiles } from './profile-top.ts';
import { writeNewKekFile } from '../../spool/keys.ts';

const { values: args } = parseArgs({ options: { profile: { type: 'string' } }, allowPositionals: false, strict: false });
const PROFILE = process.env.BENCH_PROFILING || (args.profile === undefined ? undefined : path.resolve(args.profile === true || args.profile === '' ? 'cycle-profile' : String(args.profile)));
if (PROFILE && !process.env.BENCH_PROFILING) {
  // --cpu-prof only works from the start (and not in NODE_OPTIONS): run the benchmark again under
  // it (worker threads inherit it), then summarise.
  await rm(PROFILE, { recursive: true, force: true });
  await mkdir(PROFILE, { recursive: true });
  const self = fileURLToPath(import.meta.url);
  const child = spawnSync(process.execPath, [...process.execArgv, '--cpu-prof', `--cpu-prof-dir=${PROFILE}`, self], { stdio: 'inherit', env: { ...process.env, BENCH_PROFILING: PROFILE } });
  printTop(profileFiles([PROFILE]), 30);
  console.log(`CPU profiles in ${PROFILE} (one per thread; open in Chrome DevTools > Performance, or: npx tsx scripts/bench/profile-top.ts ${PROFILE})`);
  process.exit(child.status ?? 1);
}

const MERCHANTS = Number(process.env.BENCH_MERCHANTS ?? 200);
const RECORDS = Number(process.env.BENCH_RECORDS ?? 5000);
const COMPANIES = 5;
const MODES = (process.env.BENCH_MODES ?? 'embedded,bullmq1,bullmq2').split(',');
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/9';
const CONCURRENCY = process.env.BENCH_CONCURRENCY ? Number(process.env.BENCH_CONCURRENCY) : undefined;
const TOTAL = MERCHANTS * RECORDS;

const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

const MAINFRAME = [COMPANIES - 1]; // card company 5 takes the EBCDIC 120-byte 32
const CACHE = path.join(os.tmpdir(), `tsunagi-bench-cycle-${MERCHANTS}x${RECORDS}`);

/** The merchants' files, generated once per size (seeded, so always the same) and kept; each run gets copies. */
async function template(): Promise<TestCentre> {
  const t = await makeTestCentre({ merchants: MERCHANTS, companies: COMPANIES, mainframeCompanies: MAINFRAME });
  const done = path.join(CACHE, 'complete');
  const cached = !process.env.BENCH_FRESH && (await stat(done).then(() => true, () => false));
  for (const m of t.merchantIds) {
    const inbound = path.join(t.dir, 'spool', 'partners', m, 'inbound');
    await rm(inbound, { recursive: true, force: true });
    if (!cached) await mkdir(path.join(CACHE, m), { recursive: true });
    await symlink(path.join(CACHE, m), inbound, 'dir');
  }
  if (!cached) {
    await dropSalesFiles(t, { records: RECORDS });
    await writeFile(done, '');
  }
  return t;
}

/** The baseline, in a child process so that this process's peak RSS is the cycle's. */
function formatsRateApart(tpl: TestCentre): number {
  const self = fileURLToPath(import.meta.url);
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--cpu-prof')); // the profile is the cycle's
  const child = spawnSync(process.execPath, [...execArgv, self], { env: { ...process.env, BENCH_BASELINE_OF: JSON.stringify({ dir: tpl.dir, merchantIds: tpl.merchantIds }) }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const rate = Number(/^baseline (\S+)$/m.exec(child.stdout)?.[1]);
  if (child.status !== 0 || !(rate > 0)) throw new Error(`the formats baseline failed: ${child.stdout}`);
  return rate;
}

if (process.env.BENCH_EMBEDDED_OF) {
  await runEmbeddedHere(process.env.BENCH_EMBEDDED_OF);
  process.exit(0);
}

if (process.env.BENCH_BASELINE_OF) {
  console.log(`baseline ${await formatsRate(JSON.parse(process.env.BENCH_BASELINE_OF) as TestCentre)}`);
  process.exit(0);
}

/** The baseline: the formats engine's validate + split over the same files, one after another, on one thread. */
async function formatsRate(tpl: Pick<TestCentre, 'dir' | 'merchantIds'>): Promise<number> {
  const codes = new Set(Array.from({ length: COMPANIES }, (_, i) => companyCode(i)));
  const out = path.join(tpl.dir, 'formats-bench');
  await mkdir(out, { recursive: true });
  let sec = 0;
  for (const m of tpl.merchantIds) {
    const dir = path.join(tpl.dir, 'spool', 'partners', m, 'inbound');
    for (const name of await readdir(dir)) {
      const file = path.join(dir, name);
      const t0 = process.hrtime.bigint();
      const report = await validateFile(file, { policy: 'record', routeCodes: codes, allowedFileTypes: ['31'] });
      await splitFile(file, {
        skipRecordNos: report.rejectedRecordNos,
        routeOf: (f) => f.cardCompanyCode!,
        targetFormat: (id) => (id === companyCode(COMPANIES - 1) ? { layout: 'sales.company120', fileType: '32' } : { layout: 'sales.data', fileType: '32' }),
        header: { senderCode: '0000000001', senderName: 'TEST CENTRE', createdDate: '20261126', createdTime: '010000', receiverCode: (id) => `2000000${id}`, fileSeq: 1 },
        stampCentreRef: { start: 100_000_000_000n, centreDate: '20261126' },
        outputPath: (id) => path.join(out, `${id}.dat`),
      });
      sec += Number(process.hrtime.bigint() - t0) / 1e9;
    }
  }
  await rm(out, { recursive: true, force: true });
  return TOTAL / sec;
}

/** BENCH_PG=1: each run's ledger is a fresh PostgreSQL database instead of SQLite. */
const PG_ADMIN = process.env.BENCH_PG ? (process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test') : undefined;

const benchDatabases: string[] = [];

async function freshLedgerUrl(): Promise<string | undefined> {
  if (!PG_ADMIN) return undefined;
  const name = `tsunagi_bench_${Date.now().toString(36)}`;
  benchDatabases.push(name);
  const admin = knexFactory({ client: 'pg', connection: PG_ADMIN });
  await admin.raw(`create database ${name}`);
  await admin.destroy();
  return PG_ADMIN.replace(/\/[^/]*$/, `/${name}`);
}

async function centreFor(tpl: TestCentre, queue: string, sqliteSync?: string, encrypted = false): Promise<TestCentre> {
  const ledger = (await freshLedgerUrl()) ?? (sqliteSync ? `sqlite:./ledger.db?synchronous=${sqliteSync}` : undefined);
  const c = await makeTestCentre({ merchants: MERCHANTS, companies: COMPANIES, mainframeCompanies: MAINFRAME, queue, ledger });
  if (process.env.BENCH_THREADS !== undefined) {
    // workers.threads in the config: the BullMQ worker processes read it (the embedded run gets it as an option too)
    const yaml = await readFile(c.configFile, 'utf8');
    if (!yaml.includes('workers: { concurrency: 2 }')) throw new Error('the test centre config changed shape: cannot set workers.threads');
    await writeFile(c.configFile, yaml.replace('workers: { concurrency: 2 }', `workers: { concurrency: 2, threads: ${Number(process.env.BENCH_THREADS)} }`));
  }
  if (encrypted) {
    await writeNewKekFile(path.join(c.dir, 'kek'));
    await appendFile(c.configFile, 'encryption: { kek: { file: ./kek } }\n');
  }
  for (const m of tpl.merchantIds) {
    const from = path.join(tpl.dir, 'spool', 'partners', m, 'inbound');
    const to = path.join(c.dir, 'spool', 'partners', m, 'inbound');
    for (const name of await readdir(from)) await copyFile(path.join(from, name), path.join(to, name));
  }
  return c;
}

async function verify(centre: Centre): Promise<void> {
  if (!(await cycleDone(centre, MERCHANTS, COMPANIES))) throw new Error('the cycle did not finish');
  const rows = (await centre.ledger.db('files').where('direction', 'in').sum({ n: 'accepted_count' })) as { n: number }[];
  if (Number(rows[0]!.n) !== TOTAL) throw new Error(`accepted ${rows[0]!.n} records, expected ${TOTAL}`);
}

/** Under --profile: the timed window is kept beside the profiles (profile-top.ts counts only the samples inside). */
async function noteTimedWindow(t0: bigint): Promise<void> {
  if (!PROFILE) return;
  const file = path.join(PROFILE, 'timed.json');
  const windows = JSON.parse(await readFile(file, 'utf8').catch(() => '[]')) as [number, number][];
  windows.push([Number(t0 / 1000n), Number(process.hrtime.bigint() / 1000n)]);
  await writeFile(file, JSON.stringify(windows));
}

/** CPU time of the last embedded run, every thread of this process (the part of the cost the machine's load does not inflate much). */
let lastCpuMs: number | undefined;
let lastSysMs: number | undefined;
/** BullMQ runs: the worker processes' CPU over the wall time (how many cores they kept busy). */
let lastCores: number | undefined;

/** Peak RSS of the last embedded run's process (its own child process: see runEmbedded). */
let lastPeakRssMb: number | undefined;
let peakRssMb = 0;

/**
 * An embedded run, in a process of its own started the way bin/tsunagi.js starts the CLI (from
 * the bundle, without tsx), so that its peak RSS is what `tsunagi serve` or `tsunagi cycle` would
 * take, not this benchmark's (which runs under tsx and holds the files' generator).
 */
function runEmbedded(def: TestCentre): number {
  const self = fileURLToPath(import.meta.url);
  const bundler = fileURLToPath(new URL('../../jobs/runners/bundle.js', import.meta.url));
  const execArgv = process.execArgv.filter((a) => a.startsWith('--cpu-prof')); // the profile, not tsx's loader
  // TSUNAGI_CLI_TSX=1 (as for bin/tsunagi.js): the run's process under tsx instead, to compare
  const args = process.env.TSUNAGI_CLI_TSX === '1' ? [...execArgv, '--import', 'tsx', self] : [...execArgv, bundler, self, 'bench-cycle'];
  const child = spawnSync(process.execPath, args, { env: { ...process.env, BENCH_EMBEDDED_OF: def.configFile }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const line = /^embedded-result (.*)$/m.exec(child.stdout)?.[1];
  if (child.status !== 0 || !line) throw new Error(`the embedded run failed (exit ${child.status}): ${child.stdout}`);
  const result = JSON.parse(line) as { ms: number; cpuMs: number; sysMs: number; maxRssMb: number };
  lastCpuMs = result.cpuMs;
  lastSysMs = result.sysMs;
  lastPeakRssMb = result.maxRssMb;
  peakRssMb = Math.max(peakRssMb, result.maxRssMb);
  return result.ms;
}

/** The embedded run itself, in the child process runEmbedded starts. */
async function runEmbeddedHere(configFile: string): Promise<void> {
  const centre = await openCentre(configFile, { log: quiet() });
  // warmed up like serve's: the timer measures the cycle, not the threads' start (as the BullMQ workers are up before it)
  const engine = await startEngine(centre, { concurrency: CONCURRENCY, threads: process.env.BENCH_THREADS === undefined ? undefined : Number(process.env.BENCH_THREADS), warmUp: true });
  try {
    const t0 = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    await engine.enqueue({ kind: 'scan', input: {}, jobId: 'bench-scan' });
    await engine.drain();
    await noteTimedWindow(t0);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const cpu = process.cpuUsage(cpu0);
    await verify(centre);
    console.log(`embedded-result ${JSON.stringify({ ms, cpuMs: (cpu.user + cpu.system) / 1000, sysMs: cpu.system / 1000, maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024) })}`);
  } finally {
    await engine.stop();
    await centre.close();
  }
}

async function runBullmq(def: TestCentre, url: string, processes: number): Promise<number> {
  const redis = new Redis(url);
  await redis.flushdb();
  await redis.quit();
  const centre = await openCentre(def.configFile, { log: quiet() });
  const queues = new BullmqQueues(redisConnection(url));
  const workers: WorkerProcess[] = [];
  try {
    for (let i = 0; i < processes; i++) {
      workers.push(startWorker(def.configFile, { TSUNAGI_LOG_LEVEL: 'warn', TSUNAGI_LOCK_MS: '30000', TSUNAGI_STALLED_MS: '15000' }));
    }
    // 'worker ready' is logged at info; wait for the workers' Redis clients instead.
    await sleep(500);
    await waitForWorkers(queues, processes);
    const t0 = process.hrtime.bigint();
    const cpu0 = workers.map((w) => processCpuMs(w.child.pid!));
    await queues.enqueue({ kind: 'scan', input: {}, jobId: 'bench-scan' });
    while (!(await cycleDone(centre, MERCHANTS, COMPANIES)) || (await queues.pending()) > 0) await sleep(50);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    lastCpuMs = workers.reduce((sum, w, i) => sum + processCpuMs(w.child.pid!) - cpu0[i]!, 0);
    lastCores = lastCpuMs / ms;
    await verify(centre);
    return ms;
  } finally {
    for (const w of workers) await killWorker(w, 'SIGTERM');
    await queues.close();
    await centre.close();
  }
}

/** CPU milliseconds of a process so far, all its threads (Linux /proc; 0 elsewhere). */
function processCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in clock ticks of 1/100 s
  } catch {
    return 0;
  }
}

/** Every worker process has its workers registered on every queue. */
async function waitForWorkers(queues: BullmqQueues, processes: number): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    const counts = await Promise.all(['scan', 'ingest', 'route', 'deliver'].map((k) => queues.queue(k as 'scan').getWorkersCount()));
    if (counts.every((n) => n >= processes)) return;
    if (Date.now() > until) throw new Error(`workers did not come up (${counts.join(',')})`);
    await sleep(100);
  }
}

async function main(): Promise<void> {
  console.log(`cycle benchmark: ${MERCHANTS} merchants x ${RECORDS} records = ${TOTAL.toLocaleString('en')} records -> ${COMPANIES} card companies (one EBCDIC; local delivery), ${PG_ADMIN ? 'PostgreSQL' : 'SQLite'} ledger, ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const tg = Date.now();
  const tpl = await template();
  console.log(`merchants' files ready in ${((Date.now() - tg) / 1000).toFixed(1)} s (${CACHE})`);
  const made: TestCentre[] = [tpl];
  const results = new Map<string, number[]>();
  const cpuResults = new Map<string, number[]>();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  try {
    const formats = process.env.BENCH_NO_BASELINE ? undefined : formatsRateApart(tpl);
    if (formats) console.log(`${'baseline: formats validate+split'.padEnd(32)} ${(TOTAL / formats).toFixed(2).padStart(7)} s ${Math.round(formats).toLocaleString('en').padStart(10)} records/s (same files, one thread, another process)`);
    for (const mode of MODES) {
      // embedded:normal runs on a SQLite ledger with synchronous=normal (no fsync per commit)
      const encrypted = mode.endsWith('+enc');
      const [kind, sqliteSync] = mode.replace(/\+enc$/, '').split(':') as [string, string | undefined];
      const queue = kind === 'embedded' ? 'embedded' : REDIS_URL;
      const def = await centreFor(tpl, queue, sqliteSync, encrypted);
      made.push(def);
      const ms = kind === 'embedded' ? runEmbedded(def) : await runBullmq(def, REDIS_URL, Number(kind.replace('bullmq', '')));
      results.set(mode, [...(results.get(mode) ?? []), ms]);
      if (!process.env.BENCH_KEEP) await rm(def.dir, { recursive: true, force: true });
      const label = (kind === 'embedded' ? 'embedded (one process)' : `BullMQ, ${kind.replace('bullmq', '')} worker process(es)`) + (sqliteSync ? ` sync=${sqliteSync}` : '') + (encrypted ? ' encrypted' : '');
      const rate = TOTAL / (ms / 1000);
      const ratio = formats ? `, ${(rate / formats).toFixed(2)}x formats` : '';
      const detail = lastCores !== undefined ? ` (worker processes, ${lastCores.toFixed(2)} cores busy)` : lastSysMs !== undefined ? ` (system ${(lastSysMs / MERCHANTS).toFixed(1)})` : '';
      const rss = lastPeakRssMb !== undefined ? `, peak RSS ${lastPeakRssMb} MB` : '';
      const cpu = lastCpuMs !== undefined ? `, CPU ${(lastCpuMs / MERCHANTS).toFixed(1)} ms per inbound file${detail}${rss}` : '';
      if (lastCpuMs !== undefined) cpuResults.set(mode, [...(cpuResults.get(mode) ?? []), lastCpuMs]);
      lastCpuMs = undefined;
      lastCores = undefined;
      lastSysMs = undefined;
      lastPeakRssMb = undefined;
      console.log(`${label.padEnd(32)} ${(ms / 1000).toFixed(2).padStart(7)} s ${Math.round(rate).toLocaleString('en').padStart(10)} records/s ${(MERCHANTS / (ms / 1000)).toFixed(1).padStart(7)} inbound files/s${ratio}${cpu} [load ${os.loadavg()[0]!.toFixed(1)}]`);
    }
    if (peakRssMb) console.log(`peak RSS of the embedded runs: ${peakRssMb} MB (each a process of its own started as bin/tsunagi.js starts the CLI, with its worker threads); this benchmark's own process: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
    const one = results.get('bullmq1');
    const two = results.get('bullmq2');
    if (one && two) console.log(`2 workers / 1 worker: ${(median(one) / median(two)).toFixed(2)}x`);
    for (const [mode, runs] of results) {
      const plainRuns = mode.endsWith('+enc') ? results.get(mode.replace(/\+enc$/, '')) : undefined;
      if (!plainRuns) continue;
      const enc = median(runs);
      const base = median(plainRuns);
      console.log(`encryption at rest, ${mode.replace(/\+enc$/, '')}: median ${(enc / 1000).toFixed(2)} s encrypted vs ${(base / 1000).toFixed(2)} s plain (${runs.length}+${plainRuns.length} runs) = ${((enc / base - 1) * 100).toFixed(1)}% slower (target at most 10%); load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
      const cpuEnc = cpuResults.get(mode);
      const cpuPlain = cpuResults.get(mode.replace(/\+enc$/, ''));
      if (cpuEnc && cpuPlain) console.log(`  CPU (all threads): median ${(median(cpuEnc) / MERCHANTS).toFixed(1)} ms per inbound file encrypted vs ${(median(cpuPlain) / MERCHANTS).toFixed(1)} plain = ${((median(cpuEnc) / median(cpuPlain) - 1) * 100).toFixed(1)}% more`);
    }
  } finally {
    if (!process.env.BENCH_KEEP) {
      for (const c of made) await rm(c.dir, { recursive: true, force: true });
      if (PG_ADMIN && benchDatabases.length) {
        const admin = knexFactory({ client: 'pg', connection: PG_ADMIN });
        for (const name of benchDatabases) await admin.raw(`drop database if exists ${name} with (force)`);
        await admin.destroy();
      }
    }
    else console.log(`centres kept: ${made.map((c) => c.dir).join(' ')}`);
  }
}

await main();
// Worker handles (Redis, knex) can keep the event loop alive; the benchmark is done.
process.exit(0);
