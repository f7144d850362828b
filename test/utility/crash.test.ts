// Utility flows exactly once under crashes, like the sales flow's crash test: on BullMQ with a
// SQLite ledger, `tsunagi worker` processes are SIGKILLed at random points while a 21, then a 23,
// then the card companies' 33s go through; after a sweep and one more worker every file was made
// once and delivered once, the 22 has one line per registration, every bill is in exactly one 32
// and gets exactly one 24 line. TSUNAGI_CRASH_SEED replays a run's kill points. The ledger is
// SQLite or PostgreSQL by the day's rotation (TSUNAGI_CRASH_LEDGERS=both runs both).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { generateFile } from '../../formats/index.ts';
import { openCentre, type Centre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { makeJobContext } from '../../jobs/runtime.ts';
import { HANDLERS } from '../../jobs/handlers/index.ts';
import { BullmqQueues, redisConnection } from '../../jobs/runners/bullmq.ts';
import { isTemporaryName } from '../../spool/tree.ts';
import type { TestCentre } from '../helpers/centre.ts';
import { crashLedger, crashLedgerKinds } from '../helpers/ledgers.ts';
import { killWorker, seededRandom, sleep, startWorker, waitUntil, type WorkerProcess } from '../helpers/crash.ts';
import { makeUtilityCentre, readRecordFile, remoteFiles, UTILITY, UTILITY_CODE, writeRecordFile } from './helpers.ts';

const REDIS_URL = `${process.env.TSUNAGI_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'}/8`;
const CUSTOMERS = 200;
const KILLS_PER_STAGE = Number(process.env.TSUNAGI_CRASH_KILLS ?? 2);
const SEED = Number(process.env.TSUNAGI_CRASH_SEED ?? Date.now() % 1_000_000);
const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

async function transitions(centre: Centre): Promise<number> {
  return Number(((await centre.ledger.db('transitions').count({ n: '*' }))[0] as { n: number }).n);
}

/** Inbound all routed (or rejected) and outbound all sent (or acknowledged). */
async function settled(centre: Centre, inbound: number): Promise<boolean> {
  const rows = (await centre.ledger.db('files').select('direction', 'state').count({ n: '*' }).groupBy('direction', 'state')) as { direction: string; state: string; n: number }[];
  const n = (d: string, s: string) => Number(rows.find((r) => r.direction === d && r.state === s)?.n ?? 0);
  // a 32 whose results came back is 'acknowledged'
  const outNotSent = rows.filter((r) => r.direction === 'out' && r.state !== 'sent' && r.state !== 'acknowledged').reduce((a, r) => a + Number(r.n), 0);
  return n('in', 'routed') + n('in', 'rejected') === inbound && outNotSent === 0;
}

describe('utility crash', () => {
  const made: TestCentre[] = [];
  const workers: WorkerProcess[] = [];
  after(async () => {
    for (const w of workers) await killWorker(w);
    if (!process.env.TSUNAGI_KEEP) for (const c of made) await rm(c.dir, { recursive: true, force: true });
  });

  for (const kind of crashLedgerKinds(0)) it(`SIGKILL workers during registration, billing and results: every file once, every bill once, one 24 line each (${kind})`, { timeout: 900_000 }, async () => {
    const redis = new Redis(REDIS_URL);
    await redis.flushdb();
    await redis.quit();
    const pg = await crashLedger(kind);
    const { centre: def, env } = await makeUtilityCentre(pg.url, REDIS_URL);
    made.push(def);
    const inbound = (id: string) => path.join(def.dir, 'spool', 'partners', id, 'inbound');
    Object.assign(process.env, env);
    const centre = await openCentre(def.configFile, { log: quiet() });
    const queues = new BullmqQueues(redisConnection(REDIS_URL));
    const random = seededRandom(SEED);
    const spawn = () => { const w = startWorker(def.configFile, { ...env, TSUNAGI_NOW: '2026-11-26T01:00:00Z' }); workers.push(w); return w; };
    let files = 0;
    const stage = async (what: string) => {
      const t0 = Date.now();
      let worker = spawn();
      await worker.ready;
      await queues.enqueue({ kind: 'scan', input: { cycle: true }, jobId: `crash-${what}` });
      for (let i = 0; i < KILLS_PER_STAGE; i++) {
        const target = (await transitions(centre)) + 1 + Math.floor(random() * 6);
        const deadline = Date.now() + 4000;
        while (Date.now() < deadline && (await transitions(centre)) < target) await sleep(15);
        await killWorker(worker);
        worker = spawn();
        await worker.ready;
      }
      await waitUntil(`${what}: the worker to go quiet`, async () => (await settled(centre, files)) || (await queues.pending()) === 0, 180_000, 250).catch(() => undefined);
      await killWorker(worker, 'SIGTERM');
      await HANDLERS.sweep({ sendingLeaseMs: 0 }, makeJobContext(centre, (r) => queues.enqueue(r)));
      worker = spawn();
      await worker.ready;
      await waitUntil(`${what} to finish`, async () => (await settled(centre, files)) && (await queues.pending()) === 0, 180_000, 250);
      await killWorker(worker, 'SIGTERM');
      console.log(`# ${what}: ${Date.now() - t0} ms`);
    };
    try {
      // 1. registration
      await generateFile('21', { records: CUSTOMERS, seed: 21, senderCode: UTILITY_CODE, receiverCode: '0000000001', cardCompanyCodes: ['001', '002'], createdDate: '20261125', out: path.join(inbound(UTILITY), 'TOROKU.dat') });
      files = 1;
      await stage('registration');
      const r22 = await remoteFiles(def, UTILITY, '22');
      assert.equal(r22.length, 1);
      const lines22 = (await readRecordFile(r22[0]!)).records;
      assert.equal(lines22.length, CUSTOMERS, 'one 22 line per registration');
      const registered = Number(((await centre.ledger.db('utility_customers').where({ state: 'active' }).count({ n: '*' }))[0] as { n: number }).n);
      assert.equal(registered, lines22.filter((l) => l.resultCode === '000' && l.cardLast4 !== '0000').length);

      // 2. billing
      await generateFile('23', { records: CUSTOMERS, seed: 23, senderCode: UTILITY_CODE, receiverCode: '0000000001', createdDate: '20261126', out: path.join(inbound(UTILITY), 'SEIKYU.dat') });
      files = 2;
      await stage('billing');
      const sent = [...(await remoteFiles(def, 'cc1', '32')), ...(await remoteFiles(def, 'cc2', '32'))];
      const sales = (await Promise.all(sent.map(readRecordFile))).flatMap((f) => f.records);
      const refusedNow = (await Promise.all((await remoteFiles(def, UTILITY, '24')).map(readRecordFile))).flatMap((f) => f.records);
      const billNos = sales.map((s) => s.merchantRef!.slice(0, 12).trim());
      assert.equal(new Set(billNos).size, billNos.length, 'no bill in two 32 records');
      assert.equal(sales.length + refusedNow.length, CUSTOMERS, 'every bill forwarded or refused, once');
      assert.equal(sales.length, registered, 'every customer with a card is charged once');

      // 3. the card companies' results
      let seq = 1;
      for (const f of sent) {
        const company = f.includes(`${path.sep}cc1${path.sep}`) ? 'cc1' : 'cc2';
        const recs = (await readRecordFile(f)).records.map((r, i) => ({ ...r, resultCode: i % 5 === 0 ? '12' : '00', payoutDate: '20261226' }));
        await writeRecordFile(path.join(inbound(company), `KEKKA${seq}.dat`), 'sales', '33', { sender: company === 'cc1' ? '2000000001' : '2000000002', receiver: '0000000001', fileSeq: seq++, date: '20261127' }, recs);
        files++;
      }
      await stage('results');
      const all24 = (await Promise.all((await remoteFiles(def, UTILITY, '24')).map(readRecordFile))).flatMap((f) => f.records);
      const keys = all24.map((l) => l.billNo!);
      assert.equal(new Set(keys).size, keys.length, 'one 24 line per bill');
      assert.equal(all24.length, CUSTOMERS);

      // every outbound file once: one successful delivery each, the remote folders hold exactly the ledger's files with its bytes
      const outbound = await centre.files.list({ direction: 'out' });
      const ok = (await centre.ledger.db('deliveries').where({ outcome: 'ok' }).select('file_id')) as { file_id: string }[];
      for (const f of outbound) assert.equal(ok.filter((d) => d.file_id === f.id).length, 1, `${f.id}: one successful delivery`);
      for (const partner of [UTILITY, 'cc1', 'cc2']) {
        const names = (await readdir(def.remote(partner))).sort();
        assert.deepEqual(names.filter(isTemporaryName), []);
        const rows = outbound.filter((f) => f.partner_id === partner);
        assert.deepEqual(names, rows.map((r) => r.name).sort(), `${partner}: exactly the ledger's files`);
        for (const r of rows) assert.equal(createHash('sha256').update(await readFile(path.join(def.remote(partner), r.name))).digest('hex'), r.sha256);
      }
      console.log(`# utility crash seed ${SEED}: ${KILLS_PER_STAGE * 3} kills, ${outbound.length} outbound files`);
    } catch (err) {
      console.log(`# utility crash seed ${SEED} (replay with TSUNAGI_CRASH_SEED=${SEED}); centre ${def.dir}`);
      for (const w of workers.slice(-2)) console.log(w.output().slice(-3000));
      process.env.TSUNAGI_KEEP = '1';
      throw err;
    } finally {
      await queues.close();
      await centre.close();
      for (const w of workers) await killWorker(w);
      await pg.dispose();
    }
  });
});
