// Exactly once under crashes, as the card companies and merchants see it. On SQLite and on
// PostgreSQL, with a Redis of the test's own: `tsunagi serve` and `tsunagi worker` (BullMQ) are
// SIGKILLed at random points while merchants keep sending, Redis is once killed and restarted
// empty (serve must restore its schedulers and the in-flight work by itself), then `tsunagi cycle`
// (embedded, same ledger and spool) is SIGKILLed at random points; then two uninterrupted cycles.
// Every partner is a stand-in that takes each file the moment it appears (test/helpers/
// counting-partner.ts). Checked against the generated 31s and what the partners took: every
// accepted record delivered exactly once, no file (fileSeq) twice at a partner, every 91 notice
// once, nothing in a non-final state, nothing left in work/ or at a partner under a temporary name.
// TSUNAGI_CRASH_SEED replays a run's kill points; TSUNAGI_CRASH_SWEEP=N adds N more seeds per ledger.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { generateFile } from '../../formats/index.ts';
import { openCentre, type Centre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { BullmqQueues, redisConnection } from '../../jobs/runners/bullmq.ts';
import { isTemporaryName } from '../../spool/tree.ts';
import { companyCode, makeTestCentre, merchantCode, merchantNo, type TestCentre } from '../helpers/centre.ts';
import { postgresLedger, type TestLedger } from '../helpers/ledgers.ts';
import { freePort } from '../helpers/sshd.ts';
import { fileKeys, killWorker, seededRandom, sleep, startRedis, startServe, startTsunagi, startWorker, stopRedis, type RedisServer, type WorkerProcess } from '../helpers/crash.ts';
import { startCountingPartner, type CountingPartner } from '../helpers/counting-partner.ts';

const SEED = Number(process.env.TSUNAGI_CRASH_SEED ?? Date.now() % 1_000_000);
const SWEEP = Number(process.env.TSUNAGI_CRASH_SWEEP ?? 0);
const MERCHANTS = 4;
const COMPANIES = 3;
const RECORDS = Number(process.env.TSUNAGI_CRASH_RECORDS ?? 150);
const QUEUE_KILLS = 12; // serve and worker, one of them a Redis restart
const CYCLE_KILLS = 9;
const ERROR_MERCHANT = 1; // m002 sends files with planted errors: 91 notices go back to it

const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });
const count = async (q: Promise<unknown[]>) => Number(((await q)[0] as { n: number }).n);

interface Run {
  def: TestCentre;
  /** company id -> record keys of the clean merchants' files, as generated */
  expected: Map<string, string[]>;
  filesByMerchant: Map<string, number>;
}

/** Generates one merchant 31 outside the spool, reads its keys, then drops it in whole. */
async function dropFile(run: Run, merchant: number, fileSeq: number, random: () => number): Promise<void> {
  const id = run.def.merchantIds[merchant]!;
  const staging = path.join(run.def.dir, 'staging');
  await mkdir(staging, { recursive: true });
  const file = path.join(staging, `sales-${id}-${fileSeq}.dat`);
  await generateFile('31', {
    records: RECORDS,
    seed: Math.floor(random() * 1e9),
    merchantNo: merchantNo(merchant),
    senderCode: merchantCode(merchant),
    receiverCode: '0000000001',
    fileSeq,
    cardCompanyCodes: run.def.companyIds.map((_, i) => companyCode(i)),
    createdDate: '20261125',
    errors: merchant === ERROR_MERCHANT,
    out: file,
  });
  if (merchant !== ERROR_MERCHANT) {
    const idByCode = new Map(run.def.companyIds.map((cid, i) => [companyCode(i), cid]));
    const { openSource, streamCanonical, makeRecordView } = await import('../../formats/index.ts');
    const src = await openSource(file, {});
    const view = makeRecordView(src.family.data);
    await streamCanonical(src, (rec, off, _no, type) => {
      if (type !== '2') return;
      view.point(rec, off);
      const f = view.fields;
      // Keyed by file too: a merchant's files reuse terminals and slip numbers.
      run.expected.get(idByCode.get(f.cardCompanyCode!)!)!.push(`${path.basename(file)}#${f.merchantNo!.trim()}|${f.terminalId!.trim()}|${f.slipNo}|${f.useDate}`);
    });
  }
  run.filesByMerchant.set(id, (run.filesByMerchant.get(id) ?? 0) + 1);
  await rename(file, path.join(run.def.dir, 'spool', 'partners', id, 'inbound', path.basename(file)));
}

async function transitions(centre: Centre): Promise<number> {
  return count(centre.ledger.db('transitions').count({ n: '*' }));
}

/**
 * A random point: a random time (up to 2.5 s: the process may still be starting), or once the
 * ledger moved on by 1-25 transitions (at most 3 s).
 */
async function randomPoint(centre: Centre, random: () => number): Promise<void> {
  const byTime = random() < 0.3;
  const until = Date.now() + (byTime ? Math.floor(random() * 2500) : 3000);
  const target = (await transitions(centre)) + 1 + Math.floor(random() * 25);
  while (Date.now() < until && (byTime || (await transitions(centre)) < target)) await sleep(byTime ? 10 : 5);
}

async function inFlight(centre: Centre): Promise<number> {
  return count(centre.ledger.db('files').whereIn('state', ['received', 'accepted', 'sending']).count({ n: '*' }));
}

async function checkExactlyOnce(centre: Centre, run: Run, partners: Map<string, CountingPartner>): Promise<void> {
  const db = centre.ledger.db;
  assert.deepEqual(await db('files').whereIn('state', ['received', 'accepted', 'sending']).select('id', 'state', 'reason'), [], 'nothing in a non-final state');
  const inbound = await centre.files.list({ direction: 'in' });
  assert.equal(inbound.length, [...run.filesByMerchant.values()].reduce((a, b) => a + b, 0), 'every merchant file in the ledger');
  for (const f of inbound) assert.equal(f.state, 'routed', `inbound ${f.id} (${f.partner_id}) is ${f.state}: ${f.reason}`);
  const parentOf = new Map(inbound.map((f) => [f.id, f]));
  const outbound = await centre.files.list({ direction: 'out' });
  for (const f of outbound) assert.equal(f.state, 'sent', `outbound ${f.id} is ${f.state}: ${f.reason}`);
  const ok = (await db('deliveries').where({ outcome: 'ok' }).select('file_id')) as { file_id: string }[];
  const okCount = new Map<string, number>();
  for (const r of ok) okCount.set(r.file_id, (okCount.get(r.file_id) ?? 0) + 1);
  for (const f of outbound) assert.equal(okCount.get(f.id), 1, `${f.id}: ${okCount.get(f.id) ?? 0} successful deliveries in the ledger`);

  for (const [partnerId, partner] of partners) {
    const rows = outbound.filter((f) => f.partner_id === partnerId);
    const taken = await partner.files();
    const bySha = new Map<string, number>();
    for (const t of taken) bySha.set(t.sha256, (bySha.get(t.sha256) ?? 0) + 1);
    for (const r of rows) assert.equal(bySha.get(r.sha256!), 1, `${partnerId} took ${r.name} ${bySha.get(r.sha256!) ?? 0} times`);
    assert.equal(taken.length, rows.length, `${partnerId} took ${taken.length} files; the ledger sent it ${rows.length}`);
    const names = taken.map((t) => t.name).sort();
    assert.deepEqual(names.filter((n, i) => i > 0 && names[i - 1] === n), [], `${partnerId}: a file name (fileSeq) taken twice`);
    assert.deepEqual((await partner.leftInFolder()).filter(isTemporaryName), [], `${partnerId}: temporaries left at the partner`);
    if (run.expected.has(partnerId)) {
      const got: string[] = [];
      const rowBySha = new Map(rows.map((r) => [r.sha256, r]));
      for (const t of taken) {
        const parent = parentOf.get(rowBySha.get(t.sha256)!.parent_id!)!;
        if (parent.partner_id === run.def.merchantIds[ERROR_MERCHANT]) continue;
        const tmp = path.join(run.def.dir, 'check.dat');
        await writeFile(tmp, t.bytes);
        got.push(...(await fileKeys(tmp)).map((k) => `${parent.name}#${k}`));
      }
      got.sort();
      assert.deepEqual(got.filter((k, i) => i > 0 && got[i - 1] === k), [], `${partnerId}: records delivered twice`);
      assert.deepEqual(got, [...run.expected.get(partnerId)!].sort(), `${partnerId}: delivered records differ from the generated ones`);
    }
  }
  const errorMerchant = run.def.merchantIds[ERROR_MERCHANT]!;
  const notices = outbound.filter((f) => f.file_type === '91');
  assert.ok(notices.every((n) => n.partner_id === errorMerchant), 'only the merchant with errors got notices');
  assert.equal(notices.length, run.filesByMerchant.get(errorMerchant), 'one 91 notice per file with errors');
  const work = (await readdir(centre.spool.work)).filter((n) => n !== 'zengin-partial');
  assert.deepEqual(work, [], 'nothing left in work/');
  for (const p of [...run.def.merchantIds, ...run.def.companyIds]) {
    assert.deepEqual((await readdir(centre.spool.outbound(p))).filter(isTemporaryName), [], `${p}: temporaries left in our outbound folder`);
  }
}

async function crashRun(kind: string, seed: number, cleanups: (() => Promise<unknown>)[]): Promise<void> {
  const random = seededRandom(seed);
  let redis: RedisServer = await startRedis(await freePort());
  cleanups.push(() => stopRedis(redis));
  let pg: TestLedger | undefined;
  if (kind === 'postgres') {
    pg = await postgresLedger();
    cleanups.push(() => pg!.dispose());
  }
  const def = await makeTestCentre({ merchants: MERCHANTS, companies: COMPANIES, queue: redis.url, ledger: pg?.url, maxAttempts: 8, backoffSeconds: 0.2 });
  const embeddedConfig = path.join(def.dir, 'embedded.yaml');
  // The cycles validate and convert on their main thread: booting worker threads dominated a
  // cycle's time on a loaded machine.
  await writeFile(embeddedConfig, (await readFile(def.configFile, 'utf8')).replace(`queue: ${redis.url}`, 'queue: embedded').replace('workers: { concurrency: 2 }', 'workers: { concurrency: 2, threads: 0 }'));
  const partners = new Map<string, CountingPartner>();
  for (const id of [...def.companyIds, ...def.merchantIds]) partners.set(id, await startCountingPartner(def.remote(id)));
  for (const p of partners.values()) cleanups.push(() => p.stop());
  const run: Run = { def, expected: new Map(def.companyIds.map((id) => [id, []])), filesByMerchant: new Map() };
  let fileSeq = 1;
  for (let m = 0; m < MERCHANTS; m++) await dropFile(run, m, fileSeq, random);

  const centre = await openCentre(def.configFile, { log: quiet() });
  const procs: WorkerProcess[] = [];
  const spawnProc = (start: () => WorkerProcess) => {
    const p = start();
    procs.push(p);
    return p;
  };
  cleanups.push(async () => {
    for (const p of procs) await killWorker(p);
  });
  const t0 = Date.now();
  let hitInFlight = 0;
  const kills: string[] = [];
  try {
    // BullMQ: serve (schedulers, start-up sweep, workers) and one more worker.
    let serve = spawnProc(() => startServe(def.configFile));
    let worker = spawnProc(() => startWorker(def.configFile));
    await Promise.all([serve.ready, worker.ready]);
    const queues = new BullmqQueues(redisConnection(redis.url));
    await queues.enqueue({ kind: 'scan', input: { cycle: true }, jobId: 'crash-scan' });
    await queues.close();
    const redisAt = 3 + Math.floor(random() * (QUEUE_KILLS - 4));
    for (let i = 0; i < QUEUE_KILLS; i++) {
      if (i % 2 === 0) await dropFile(run, Math.floor(random() * MERCHANTS), ++fileSeq, random); // merchants keep sending
      await randomPoint(centre, random);
      if ((await inFlight(centre)) > 0) hitInFlight++;
      if (i === redisAt) {
        // Redis dies and comes back empty: no schedulers, no queued jobs. serve must notice.
        await stopRedis(redis);
        await sleep(300);
        redis = await startRedis(redis.port);
        kills.push('redis');
        continue;
      }
      if (random() < 0.5) {
        await killWorker(serve);
        serve = spawnProc(() => startServe(def.configFile));
        kills.push('serve');
      } else {
        await killWorker(worker);
        worker = spawnProc(() => startWorker(def.configFile));
        kills.push('worker');
      }
    }
    await killWorker(serve);
    await killWorker(worker);
    // Embedded cycles on the same ledger and spool, killed at random points.
    for (let i = 0; i < CYCLE_KILLS; i++) {
      if (i % 2 === 0) await dropFile(run, Math.floor(random() * MERCHANTS), ++fileSeq, random);
      const cycle = spawnProc(() => startTsunagi(['cycle', '--json', '--config', embeddedConfig], '', { TSUNAGI_LOG_LEVEL: 'warn' }));
      await randomPoint(centre, random);
      if ((await inFlight(centre)) > 0) hitInFlight++;
      await killWorker(cycle);
      kills.push('cycle');
    }
    const killedFor = Date.now() - t0;
    // Two uninterrupted cycles finish the day: no lease to wait for.
    let last: { unfinished: unknown[] } | undefined;
    for (let i = 0; i < 2; i++) {
      const cycle = spawnProc(() => startTsunagi(['cycle', '--json', '--config', embeddedConfig], '', { TSUNAGI_LOG_LEVEL: 'warn' }));
      const code = await cycle.exited;
      const out = cycle.output().trim().split('\n').filter((l) => l.startsWith('{"date"')).pop();
      assert.ok(out && (code === 0 || code === 3), `cycle ${i + 1} after the kills: exit ${code}\n${cycle.output().slice(-3000)}`);
      last = JSON.parse(out!);
    }
    assert.deepEqual(last!.unfinished, [], 'the second cycle left nothing unfinished');
    await sleep(200); // the partners take the last files
    await checkExactlyOnce(centre, run, partners);
    const notes = (await centre.ledger.db('deliveries').whereNotNull('note').select('note')) as { note: string }[];
    const recovered = notes.filter((n) => /interrupted/.test(n.note)).length;
    const abandoned = await count(centre.ledger.db('deliveries').where({ outcome: 'abandoned' }).count({ n: '*' }));
    const taken = notes.filter((n) => /taken/.test(n.note)).length;
    console.log(
      `# crash ${kind} seed ${seed}: kills ${kills.join(',')}; ${hitInFlight}/${QUEUE_KILLS + CYCLE_KILLS} with work in flight over ${killedFor} ms; ` +
        `${recovered} pushes finished after a kill, ${abandoned} abandoned and pushed again, ${taken} taken at once; ${run.filesByMerchant.size} merchants, ${[...run.filesByMerchant.values()].reduce((a, b) => a + b, 0)} files; total ${Date.now() - t0} ms`,
    );
  } catch (err) {
    console.log(`# crash ${kind} seed ${seed} (replay with TSUNAGI_CRASH_SEED=${seed}); centre ${def.dir}; kills ${kills.join(',')}`);
    for (const p of procs.slice(-3)) console.log(p.output().slice(-3000));
    process.env.TSUNAGI_KEEP = '1';
    throw err;
  } finally {
    await centre.close();
    if (!process.env.TSUNAGI_KEEP) cleanups.push(() => rm(def.dir, { recursive: true, force: true }));
  }
}

describe('crash', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });
  for (const kind of ['sqlite', 'postgres']) {
    for (let n = 0; n <= SWEEP; n++) {
      const seed = SEED + n;
      it(`${kind}: SIGKILL serve, worker and cycle at ${QUEUE_KILLS + CYCLE_KILLS - 1} random points and restart Redis once: every file exactly once at the partners (seed ${seed})`, { timeout: 300_000 }, () => crashRun(kind, seed, cleanups));
    }
  }
});
