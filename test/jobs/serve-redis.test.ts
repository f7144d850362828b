// `serve` on BullMQ: a `tsunagi cycle` with nothing left to do finishes at once although serve's
// job schedulers sit in Redis as delayed jobs; and a Redis that restarts empty (schedulers and jobs
// gone) is noticed by the running serve, which restores its schedulers and the in-flight work
// within a minute and says so in its log: new merchant files are taken and delivered again.
// On SQLite or PostgreSQL by the day's rotation (TSUNAGI_CRASH_LEDGERS=both runs both).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { openCentre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { makeTestCentre, dropSalesFiles } from '../helpers/centre.ts';
import { freePort } from '../helpers/sshd.ts';
import { crashLedger, crashLedgerKinds } from '../helpers/ledgers.ts';
import { killWorker, startRedis, startServe, startTsunagi, stopRedis, waitUntil, type RedisServer, type WorkerProcess } from '../helpers/crash.ts';

const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

describe('serve on BullMQ', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  for (const kind of crashLedgerKinds(0)) it(`a cycle with nothing to do finishes at once; an empty Redis after a restart is restored by serve within a minute (${kind})`, { timeout: 180_000 }, async () => {
    const pg = await crashLedger(kind);
    cleanups.push(() => pg.dispose());
    let redis: RedisServer = await startRedis(await freePort());
    cleanups.push(() => stopRedis(redis));
    const def = await makeTestCentre({ merchants: 3, companies: 2, queue: redis.url, ledger: pg.url });
    cleanups.push(() => rm(def.dir, { recursive: true, force: true }));
    await dropSalesFiles(def, { records: 50 });
    const serve: WorkerProcess = startServe(def.configFile);
    cleanups.push(() => killWorker(serve));
    await serve.ready;
    const cycle = async () => {
      const p = startTsunagi(['cycle', '--json', '--config', def.configFile], '', { TSUNAGI_LOG_LEVEL: 'warn' });
      const code = await p.exited;
      const line = p.output().split('\n').find((l) => l.startsWith('{"date"'));
      assert.ok(line, `cycle printed no summary (exit ${code}):\n${p.output().slice(-2000)}`);
      return { code, summary: JSON.parse(line!) as { tookMs: number; unfinished: unknown[]; deliveriesOk: number } };
    };
    const first = await cycle();
    assert.equal(first.code, 0);
    const centre = await openCentre(def.configFile, { log: quiet() });
    cleanups.push(() => centre.close());
    const sent = async () => Number(((await centre.ledger.db('files').where({ direction: 'out', state: 'sent' }).count({ n: '*' }))[0] as { n: number }).n);
    assert.equal(await sent(), 6);

    // Nothing left: serve's schedulers are delayed jobs in Redis, and must not hold the cycle.
    const second = await cycle();
    assert.equal(second.code, 0);
    assert.deepEqual(second.summary.unfinished, []);
    // Before: never (a scheduler's next run is always delayed in Redis). Loaded CI machines take seconds.
    assert.ok(second.summary.tookMs < 30_000, `a cycle with nothing to do took ${second.summary.tookMs} ms`);

    // Redis restarts empty under the running serve.
    await stopRedis(redis);
    await new Promise((r) => setTimeout(r, 500));
    redis = await startRedis(redis.port);
    await dropSalesFiles(def, { records: 40, fileSeq: 2, seed: 7 });
    const t0 = Date.now();
    await waitUntil('serve to restore its schedulers and deliver the new files', async () => (await sent()) === 12, 60_000, 250);
    assert.match(serve.output(), /redis-state-lost/);
    console.log(`# cycle with nothing to do: ${second.summary.tookMs} ms; new files delivered ${Date.now() - t0} ms after Redis came back empty`);
  });
});
