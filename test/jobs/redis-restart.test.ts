// Redis lost in the middle of a cycle: our own redis-server (never the machine's shared one) is
// killed while `tsunagi worker` processes are at work, and a new, empty one starts on the same
// port. Every queued job is gone; the sweeper rebuilds the work from the ledger, and the end state
// is the same exactly-once one as after worker crashes.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { openCentre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { makeJobContext } from '../../jobs/runtime.ts';
import { HANDLERS } from '../../jobs/handlers/index.ts';
import { BullmqQueues, redisConnection } from '../../jobs/runners/bullmq.ts';
import { makeTestCentre, dropSalesFiles, type TestCentre } from '../helpers/centre.ts';
import { freePort } from '../helpers/sshd.ts';
import { assertExactlyOnce, cycleDone, expectedByCompany, killWorker, sleep, startWorker, waitUntil, type WorkerProcess } from '../helpers/crash.ts';

const MERCHANTS = 20;
const COMPANIES = 5;
const RECORDS = 1000;

const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

interface RedisServer {
  child: ChildProcess;
  exited: Promise<void>;
}

async function startRedis(port: number): Promise<RedisServer> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--daemonize', 'no'], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitUntil(`redis-server on ${port}`, async () => {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await probe.connect();
      return (await probe.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      probe.disconnect();
    }
  }, 10_000, 50);
  return { child, exited };
}

async function stopRedis(r: RedisServer | undefined): Promise<void> {
  if (!r) return;
  if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await r.exited;
}

async function transitionCount(db: import('knex').Knex): Promise<number> {
  return Number(((await db('transitions').count({ n: '*' }))[0] as { n: number }).n);
}

describe('redis restart', () => {
  const made: TestCentre[] = [];
  const workers: WorkerProcess[] = [];
  let redis: RedisServer | undefined;
  after(async () => {
    for (const w of workers) await killWorker(w);
    await stopRedis(redis);
    if (!process.env.TSUNAGI_KEEP) for (const c of made) await rm(c.dir, { recursive: true, force: true });
  });

  it('Redis killed mid-cycle and restarted empty: the sweeper recovers from the ledger, every file delivered exactly once', { timeout: 120_000 }, async () => {
    const port = await freePort();
    redis = await startRedis(port);
    const url = `redis://127.0.0.1:${port}/0`;
    const def = await makeTestCentre({ merchants: MERCHANTS, companies: COMPANIES, queue: url });
    made.push(def);
    await dropSalesFiles(def, { records: RECORDS });
    const expected = await expectedByCompany(def);
    const centre = await openCentre(def.configFile, { log: quiet() });
    const queues = new BullmqQueues(redisConnection(url));
    const ctx = makeJobContext(centre, (r) => queues.enqueue(r));
    try {
      // Two workers, so that Redis goes away under more than one process.
      const pair = [startWorker(def.configFile), startWorker(def.configFile)];
      workers.push(...pair);
      await Promise.all(pair.map((w) => w.ready));
      await queues.enqueue({ kind: 'scan', input: { cycle: true }, jobId: 'redis-restart-scan' });
      // Mid-cycle: some outbound files delivered, most not.
      await waitUntil('the first deliveries', async () => {
        const sent = await centre.ledger.db('files').where({ direction: 'out', state: 'sent' }).count({ n: '*' });
        return Number((sent[0] as { n: number }).n) >= 5;
      }, 60_000, 20);
      const before = await transitionCount(centre.ledger.db);
      await stopRedis(redis);
      assert.ok(!(await cycleDone(centre, MERCHANTS, COMPANIES)), 'Redis went away before the cycle was done');
      await sleep(1000);
      redis = await startRedis(port);
      // The new Redis knows nothing: no waiting jobs, no history.
      const probe = new Redis(url);
      const keys = await probe.dbsize();
      await probe.quit();
      assert.ok(keys < 50, `the restarted Redis holds ${keys} keys`);

      // The workers reconnect by themselves; the sweeper (as its schedule would) re-enqueues what
      // the ledger says is unfinished, while they run.
      await sleep(1500);
      await HANDLERS.sweep({}, ctx);
      await waitUntil('the workers to go quiet', async () => (await cycleDone(centre, MERCHANTS, COMPANIES)) || (await queues.pending()) === 0, 60_000, 250);
      // Pushes cut off by the outage are still 'sending': with no worker running, a sweep with a
      // zero lease puts them back, and a worker finishes.
      for (const w of pair) await killWorker(w, 'SIGTERM');
      await HANDLERS.sweep({ sendingLeaseMs: 0 }, ctx);
      const last = startWorker(def.configFile);
      workers.push(last);
      await last.ready;
      await waitUntil('the cycle to finish', async () => (await cycleDone(centre, MERCHANTS, COMPANIES)) && (await queues.pending()) === 0, 60_000, 250);
      await killWorker(last, 'SIGTERM');
      const report = await assertExactlyOnce(centre, def, expected);
      assert.equal(report.outbound, MERCHANTS * COMPANIES);
      console.log(`# redis restarted after ${before} ledger transitions; ${report.interruptedPushes} interrupted pushes retried`);
    } catch (err) {
      console.log(`# centre ${def.dir}`);
      for (const w of workers.slice(-3)) console.log(w.output().slice(-4000));
      process.env.TSUNAGI_KEEP = '1';
      throw err;
    } finally {
      await queues.close();
      await centre.close();
    }
  });
});
