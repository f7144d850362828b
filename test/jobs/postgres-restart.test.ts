// PostgreSQL stops in the middle of a cycle. A private server (initdb + pg_ctl on port 43432, or
// TSUNAGI_TEST_PRIVATE_PG_PORT; never the machine's server) holds the ledger; `tsunagi cycle` runs
// against it with card companies and merchants that take each file the moment it appears (test/
// helpers/counting-partner.ts); PostgreSQL is stopped with -m immediate once the cycle is well into
// its work and started again a few seconds later. The cycle finishes once PostgreSQL is back (a job
// that meets the outage waits for the ledger without using up its attempts: jobs/ledger-patience.ts),
// says so in our logger's lines (no driver stack trace), and every partner got each of its files
// exactly once; a second cycle finds nothing left to do.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import knexFactory from 'knex';
import { openCentre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { makeTestCentre, dropSalesFiles, type TestCentre } from '../helpers/centre.ts';
import { seededRandom, sleep, TSUNAGI_BIN } from '../helpers/crash.ts';
import { assertEachTakenOnce, startCountingPartner, type CountingPartner } from '../helpers/counting-partner.ts';
import { postgresBinDir, startPrivatePostgres, type PrivatePostgres } from '../helpers/private-postgres.ts';

const PORT = Number(process.env.TSUNAGI_TEST_PRIVATE_PG_PORT ?? 43432);
const SEED = Number(process.env.TSUNAGI_CRASH_SEED ?? Date.now() % 1_000_000);
const MERCHANTS = 3;
const COMPANIES = 2;
const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

function runCycle(configFile: string): Promise<{ code: number | null; out: string; tookMs: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, [TSUNAGI_BIN, 'cycle', '--json', '--config', configFile], { env: { ...process.env, TSUNAGI_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, out, tookMs: Date.now() - started })));
}

describe('PostgreSQL restarted in the middle of a cycle', { skip: postgresBinDir() ? false : 'no PostgreSQL binaries under /usr/lib/postgresql' }, () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('the cycle finishes after PostgreSQL is back, or fails clearly and the next cycle finishes the day: each file taken once', { timeout: 240_000 }, async () => {
    const pg: PrivatePostgres = await startPrivatePostgres(PORT);
    cleanups.push(() => pg.dispose());
    await pg.createDatabase('tsunagi');
    const c: TestCentre = await makeTestCentre({ merchants: MERCHANTS, companies: COMPANIES, ledger: pg.url('tsunagi'), maxAttempts: 8, backoffSeconds: 0.3 });
    cleanups.push(() => (process.env.TSUNAGI_KEEP ? Promise.resolve() : rm(c.dir, { recursive: true, force: true })));
    const partners = new Map<string, CountingPartner>();
    for (const id of [...c.merchantIds, ...c.companyIds]) partners.set(id, await startCountingPartner(c.remote(id)));
    for (const p of partners.values()) cleanups.push(() => p.stop());
    await dropSalesFiles(c, { records: 150, errorsFor: [1] });

    // Watch the ledger from outside; its connection fails while PostgreSQL is down, and that is fine.
    const watch = knexFactory({ client: 'pg', connection: pg.url('tsunagi'), pool: { min: 0, max: 1 }, log: { warn: () => {}, error: () => {}, debug: () => {}, deprecate: () => {} } });
    cleanups.push(() => watch.destroy());
    const transitions = async () => Number(((await watch('transitions').count({ n: '*' }).catch(() => [{ n: -1 }]))[0] as { n: number }).n);

    const first = runCycle(c.configFile);
    // Stop after a random number of ledger transitions (in ingest, route or deliver), or after 20 s.
    const target = 3 + Math.floor(seededRandom(SEED)() * 14);
    const until = Date.now() + 20_000;
    let seen = 0;
    while (Date.now() < until && (seen = await transitions()) < target) await sleep(20);
    await pg.stop('immediate');
    const downAt = Date.now();
    await sleep(3000);
    await pg.start();
    const upAfterMs = Date.now() - downAt;
    const one = await first;
    if (process.env.TSUNAGI_PG_RESTART_OUT) await writeFile(process.env.TSUNAGI_PG_RESTART_OUT, one.out);
    const summaryOf = (out: string) => {
      const line = out.split('\n').find((l) => l.startsWith('{"date"'));
      return line ? (JSON.parse(line) as { unfinished: unknown[] }) : undefined;
    };
    // Clear: our logger's lines and our own error message, never the driver's stack trace on stdout.
    assert.doesNotMatch(one.out, /^\s+at .*\(node:net/m, `a driver stack trace reached the output:\n${one.out.slice(-3000)}`);
    assert.doesNotMatch(one.out, /^Acquire connection error/m, 'knex printed its own connection error');
    // exit 3: some records were rejected (one merchant file has planted errors), as planned
    const firstFinished = (one.code === 0 || one.code === 3) && summaryOf(one.out)?.unfinished.length === 0;
    assert.ok(firstFinished, `the cycle finishes once PostgreSQL is back (seed ${SEED}, exit ${one.code}):\n${one.out.slice(-3000)}`);
    assert.match(one.out, /the ledger is not answering: the job waits for it/, 'a job met the outage and said so');

    const two = await runCycle(c.configFile);
    assert.ok(two.code === 0 || two.code === 3, `the next cycle exit ${two.code}:\n${two.out.slice(-3000)}`);
    assert.deepEqual(summaryOf(two.out)?.unfinished, [], `the next cycle leaves nothing unfinished (seed ${SEED}); first cycle (exit ${one.code}):\n${one.out.slice(-2500)}\nnext cycle:\n${two.out.slice(-2500)}`);
    await sleep(300); // the pollers take the last files

    const centre = await openCentre(c.configFile, { log: quiet() });
    try {
      const nonFinal = await centre.ledger.db('files').whereIn('state', ['received', 'accepted', 'sending', 'ready']).select('id', 'state', 'partner_id');
      assert.deepEqual(nonFinal, [], 'nothing left in a non-final state');
      const inbound = await centre.files.list({ direction: 'in' });
      assert.equal(inbound.length, MERCHANTS, 'one inbound file per merchant, none twice');
      await assertEachTakenOnce(centre, partners);
      for (const id of c.companyIds) assert.equal((await centre.files.list({ partnerId: id, direction: 'out' })).length, MERCHANTS, `${id}: one file per merchant`);
      const notices = await centre.ledger.db('files').where({ direction: 'out', file_type: '91' }).count({ n: '*' });
      assert.equal(Number((notices[0] as { n: number }).n), 1, 'one 91 notice for the merchant file with errors');
      assert.deepEqual(await readdir(centre.spool.work), [], 'nothing left in work/');
      console.log(`# first cycle's last lines: ${one.out.trim().split('\n').slice(-3).join(' | ').slice(0, 600)}`);
      console.log(`# seed ${SEED}: PostgreSQL stopped after ${seen} transitions, back after ${upAfterMs} ms; the first cycle ${firstFinished ? 'finished' : `exited ${one.code}`} in ${one.tookMs} ms, the next in ${two.tookMs} ms`);
    } catch (err) {
      console.log(`# seed ${SEED} (replay with TSUNAGI_CRASH_SEED=${SEED}); centre ${c.dir}\n# first cycle (exit ${one.code}):\n${one.out.slice(-3000)}\n# next cycle:\n${two.out.slice(-2000)}`);
      process.env.TSUNAGI_KEEP = '1';
      throw err;
    } finally {
      await centre.close();
    }
  });
});
