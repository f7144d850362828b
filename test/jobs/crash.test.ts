// Exactly once under crashes: a cycle on BullMQ (Redis) with a SQLite ledger, worked by
// `tsunagi worker` child processes that are SIGKILLed at random points 20 times and restarted each
// time. After a sweep with a zero sending lease (no worker running) and one more worker, every
// expected outbound file was delivered exactly once and nothing is missing, in the ledger and in
// the destination folders. TSUNAGI_CRASH_SEED replays a run's kill points.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { openCentre, type Centre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { makeJobContext } from '../../jobs/runtime.ts';
import { HANDLERS } from '../../jobs/handlers/index.ts';
import { BullmqQueues, redisConnection } from '../../jobs/runners/bullmq.ts';
import { makeTestCentre, dropSalesFiles, type TestCentre } from '../helpers/centre.ts';
import { assertExactlyOnce, cycleDone, expectedByCompany, killWorker, seededRandom, sleep, startWorker, waitUntil, type WorkerProcess } from '../helpers/crash.ts';

const REDIS_URL = `${process.env.TSUNAGI_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'}/7`;
const MERCHANTS = 20;
const COMPANIES = 5;
const RECORDS = Number(process.env.TSUNAGI_CRASH_RECORDS ?? 1000);
const KILLS = 20;
const SEED = Number(process.env.TSUNAGI_CRASH_SEED ?? Date.now() % 1_000_000);

async function stateCounts(centre: Centre): Promise<string> {
  const rows = (await centre.ledger.db('files').select('direction', 'state').count({ n: '*' }).groupBy('direction', 'state')) as { direction: string; state: string; n: number }[];
  return rows.map((r) => `${r.direction}:${r.state}=${r.n}`).join(' ');
}

async function transitionCount(centre: Centre): Promise<number> {
  const rows = await centre.ledger.db('transitions').count({ n: '*' });
  return Number((rows[0] as { n: number }).n);
}

const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

describe('crash', () => {
  const made: TestCentre[] = [];
  const workers: WorkerProcess[] = [];
  after(async () => {
    for (const w of workers) await killWorker(w);
    if (!process.env.TSUNAGI_KEEP) for (const c of made) await rm(c.dir, { recursive: true, force: true });
  });

  it(`SIGKILL the worker ${KILLS} times during a cycle: every file delivered exactly once, nothing missing`, { timeout: 150_000 }, async () => {
    const redis = new Redis(REDIS_URL);
    await redis.flushdb();
    await redis.quit();
    const def = await makeTestCentre({ merchants: MERCHANTS, companies: COMPANIES, queue: REDIS_URL });
    made.push(def);
    await dropSalesFiles(def, { records: RECORDS });
    const expected = await expectedByCompany(def);
    const centre = await openCentre(def.configFile, { log: quiet() });
    const queues = new BullmqQueues(redisConnection(REDIS_URL));
    const random = seededRandom(SEED);
    const spawnWorker = () => {
      const w = startWorker(def.configFile);
      workers.push(w);
      return w;
    };
    try {
      let worker = spawnWorker();
      await worker.ready;
      await queues.enqueue({ kind: 'scan', input: { cycle: true }, jobId: 'crash-test-scan' });
      const t0 = Date.now();
      let killedMidCycle = 0;
      for (let i = 0; i < KILLS; i++) {
        // A random point in the worker's life: a random time after it is ready (while it waits for
        // its predecessor's job locks to expire, or boots its threads), or once the cycle has moved
        // on by a random number of ledger transitions (in full flow: ingest, route or deliver).
        const byTime = random() < 0.3;
        const deadline = Date.now() + (byTime ? Math.floor(random() * 2500) : 3000);
        const target = (await transitionCount(centre)) + 1 + Math.floor(random() * 20);
        while (Date.now() < deadline && (byTime || (await transitionCount(centre)) < target)) await sleep(byTime ? 10 : 15);
        if (!(await cycleDone(centre, MERCHANTS, COMPANIES))) killedMidCycle++;
        if (process.env.TSUNAGI_CRASH_TRACE) console.log(`# kill ${i + 1} at ${Date.now() - t0} ms: ${await stateCounts(centre)}`);
        await killWorker(worker);
        worker = spawnWorker();
        await worker.ready;
      }
      const killedFor = Date.now() - t0;
      // Let the last worker finish what it can; then, with no worker running, the sweeper puts back
      // what the kills left half-done (pushes interrupted mid-way included), and a worker finishes.
      await waitUntil('the last worker to go quiet', async () => (await cycleDone(centre, MERCHANTS, COMPANIES)) || (await queues.pending()) === 0, 60_000, 250).catch(() => undefined);
      await killWorker(worker, 'SIGTERM');
      await HANDLERS.sweep({ sendingLeaseMs: 0 }, makeJobContext(centre, (r) => queues.enqueue(r)));
      worker = spawnWorker();
      await worker.ready;
      await waitUntil('the cycle to finish', async () => (await cycleDone(centre, MERCHANTS, COMPANIES)) && (await queues.pending()) === 0, 60_000, 250);
      await killWorker(worker, 'SIGTERM');
      const report = await assertExactlyOnce(centre, def, expected);
      assert.equal(report.outbound, MERCHANTS * COMPANIES);
      // The kills must have hit the cycle, not an idle worker.
      assert.ok(killedMidCycle >= KILLS - 2, `only ${killedMidCycle} of ${KILLS} kills hit a cycle in progress (seed ${SEED})`);
      console.log(`# crash seed ${SEED}: ${killedMidCycle}/${KILLS} kills mid-cycle over ${killedFor} ms; ${report.interruptedPushes} interrupted pushes retried; total ${Date.now() - t0} ms`);
    } catch (err) {
      console.log(`# crash seed ${SEED} (replay with TSUNAGI_CRASH_SEED=${SEED}); centre ${def.dir}`);
      for (const w of workers.slice(-2)) console.log(w.output().slice(-4000));
      process.env.TSUNAGI_KEEP = '1';
      throw err;
    } finally {
      await queues.close();
      await centre.close();
    }
  });
});
