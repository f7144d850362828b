// The pipeline end to end on both runners: the same merchant files give byte-identical outbound
// files; duplicates are refused with E108; a destination that fails recovers.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm, readFile, writeFile, readdir, copyFile, stat, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { openCentre, type Centre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { runCycle } from '../../jobs/cycle.ts';
import { createLogger } from '../../jobs/log.ts';
import { makeTestCentre, dropSalesFiles, remoteContents, type TestCentre } from '../helpers/centre.ts';
import { Writable } from 'node:stream';

const REDIS_URL = process.env.TSUNAGI_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PINNED_NOW = '2026-11-25T17:30:00Z'; // 02:30 JST on the 26th

const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

async function flushRedisDb(db: number): Promise<void> {
  const redis = new Redis(`${REDIS_URL}/${db}`);
  await redis.flushdb();
  await redis.quit();
}

async function cycleOnce(centreDef: TestCentre): Promise<{ centre: Centre; summary: Awaited<ReturnType<typeof runCycle>> }> {
  const centre = await openCentre(centreDef.configFile, { log: quiet() });
  const engine = await startEngine(centre, { lockDurationMs: 5000, stalledIntervalMs: 2000 });
  try {
    const summary = await runCycle(engine, { date: '20261126' });
    return { centre, summary };
  } finally {
    await engine.stop();
  }
}

describe('pipeline', () => {
  const made: TestCentre[] = [];
  const savedNow = process.env.TSUNAGI_NOW;
  before(() => {
    process.env.TSUNAGI_NOW = PINNED_NOW;
  });
  after(async () => {
    if (savedNow === undefined) delete process.env.TSUNAGI_NOW;
    else process.env.TSUNAGI_NOW = savedNow;
    for (const c of made) await rm(c.dir, { recursive: true, force: true });
  });

  it('50 merchants x 5 card companies: embedded and BullMQ produce byte-identical outbound files', async () => {
    await flushRedisDb(5);
    const embedded = await makeTestCentre({ merchants: 50, companies: 5, mainframeCompanies: [4] });
    const bull = await makeTestCentre({ merchants: 50, companies: 5, mainframeCompanies: [4], queue: `${REDIS_URL}/5` });
    made.push(embedded, bull);
    await dropSalesFiles(embedded, { records: 40 });
    await dropSalesFiles(bull, { records: 40 });

    const a = await cycleOnce(embedded);
    const b = await cycleOnce(bull);
    await a.centre.close();
    await b.centre.close();
    assert.equal(a.summary.filesIn, 50);
    assert.equal(a.summary.recordsAccepted, 50 * 40);
    assert.equal(a.summary.recordsRejected, 0);
    assert.equal(a.summary.deliveriesFailed, 0);
    assert.deepEqual(a.summary, { ...b.summary, tookMs: a.summary.tookMs });

    const left = await remoteContents(embedded);
    const right = await remoteContents(bull);
    // 50 merchants each send records to each of the 5 companies.
    assert.equal(left.size, 250);
    assert.deepEqual([...left.keys()].sort(), [...right.keys()].sort());
    for (const [name, bytes] of left) assert.ok(bytes.equals(right.get(name)!), `${name} differs between runners`);
    // The mainframe company got EBCDIC without line ends (header byte '1' is 0xF1).
    const mainframe = [...left.entries()].find(([n]) => n.startsWith('cc5/'))![1];
    assert.equal(mainframe[0], 0xf1);
    assert.equal(mainframe.length % 120, 0);
    const standard = [...left.entries()].find(([n]) => n.startsWith('cc1/'))![1];
    assert.equal(standard.length % 202, 0);
  });

  it('refuses a duplicate merchant file with E108 (same bytes, or same sender, type and sequence) and reports it', async () => {
    const c = await makeTestCentre({ merchants: 2, companies: 2 });
    made.push(c);
    await dropSalesFiles(c, { records: 10 });
    const first = await cycleOnce(c);
    // Archive names are the centre's own (file id and partner); the ledger knows the partner's name.
    const archived = (await first.centre.files.list({ direction: 'in' })).find((f) => f.partner_id === 'm001' && f.name === 'sales-1.dat')?.path;
    await first.centre.close();
    assert.equal(first.summary.filesRejected, 0);
    // Same bytes again from m001; a different file with the same fileSeq from m002.
    const m1 = path.join(c.dir, 'spool', 'partners', 'm001', 'inbound', 'again.dat');
    assert.ok(archived);
    await copyFile(archived, m1);
    await dropSalesFiles(c, { records: 12, seed: 9 }); // same fileSeq 1, different records
    await rm(path.join(c.dir, 'spool', 'partners', 'm001', 'inbound', 'sales-1.dat'));
    const second = await cycleOnce(c);
    try {
      assert.equal(second.summary.filesIn, 2);
      assert.equal(second.summary.filesRejected, 2);
      const rejected = await second.centre.files.list({ state: 'rejected' });
      assert.equal(rejected.length, 2);
      for (const f of rejected) assert.match(f.reason ?? '', /E108/);
      // The notices went back to the senders.
      for (const m of ['m001', 'm002']) {
        const notices = (await readdir(c.remote(m))).filter((n) => n.startsWith('T91_'));
        assert.equal(notices.length, 1, `${m} got its notice`);
        const notice = await readFile(path.join(c.remote(m), notices[0]!), 'latin1');
        assert.match(notice.split('\r\n')[1]!, /^2000000010000E108fileSeq/);
      }
    } finally {
      await second.centre.close();
    }
  });

  it('a destination that fails 3 times, then recovers, gets its file once', async () => {
    const c = await makeTestCentre({ merchants: 1, companies: 1, maxAttempts: 5, backoffSeconds: 0.05 });
    made.push(c);
    await dropSalesFiles(c, { records: 5 });
    // A file where the destination folder should be fails every push (even for root); the folder
    // comes back after the third failure.
    const dest = c.remote('cc1');
    await rm(dest, { recursive: true });
    await writeFile(dest, 'not a folder');
    const centre = await openCentre(c.configFile, { log: quiet() });
    const engine = await startEngine(centre);
    try {
      let restoring = false;
      const watcher = setInterval(async () => {
        if (restoring) return;
        const rows = await centre.ledger.db('deliveries').where({ outcome: 'error' }).count({ n: '*' });
        if (Number((rows[0] as { n: number }).n) >= 3 && !restoring && !(await stat(dest)).isDirectory()) {
          restoring = true;
          await rm(dest);
          await mkdir(dest);
        }
      }, 5);
      const summary = await runCycle(engine, { date: '20261126' });
      clearInterval(watcher);
      assert.equal(summary.deliveriesFailed, 0);
      const out = (await centre.files.list({ direction: 'out', partnerId: 'cc1' }))[0]!;
      assert.equal(out.state, 'sent');
      const attempts = await centre.ledger.db('deliveries').where({ file_id: out.id }).orderBy('attempt');
      assert.deepEqual(attempts.map((d: { outcome: string }) => d.outcome), ['error', 'error', 'error', 'ok']);
      assert.equal((await readdir(dest)).length, 1);
    } finally {
      await engine.stop();
      await centre.close();
    }
  });
});

