// Redis down (issue 12): a one-off command gives up after queueWaitSeconds with one line; a worker
// waits, says so once, and says once when Redis is back, instead of a stack trace per reconnect.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const BIN = path.resolve('bin/tsunagi.js');
// Ports of this project's fixed range where nothing listens (and where the test starts Redis itself).
const DOWN_PORT = 43998;
const LATE_PORT = 43997;

const config = (port: number) => [
  'centre: { code: "0000000001", name: REDIS TEST }',
  'spoolRoot: ./spool',
  'ledger: sqlite:./ledger.db',
  `queue: redis://127.0.0.1:${port}`,
  'queueWaitSeconds: 2',
  'workers: { concurrency: 1, threads: 0 }',
].join('\n') + '\n';

const startRedis = (port: number) => execFileSync('redis-server', ['--daemonize', 'yes', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
const stopRedis = (port: number) => {
  try {
    execFileSync('redis-cli', ['-p', String(port), 'shutdown', 'nosave'], { stdio: 'ignore' });
  } catch {
    // not running
  }
};

describe('Redis down (issue 12)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-redis-down-'));
  });
  after(async () => {
    stopRedis(LATE_PORT);
    await rm(dir, { recursive: true, force: true });
  });

  it('cycle gives up after queueWaitSeconds with one line and exit 1', async () => {
    const file = path.join(dir, 'down.yaml');
    await writeFile(file, config(DOWN_PORT));
    const t0 = Date.now();
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'cycle', '--config', file], { timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? (err as { code: number }).code : 0, stdout, stderr }));
    });
    assert.equal(r.code, 1, r.stderr);
    assert.ok(Date.now() - t0 < 45_000);
    assert.deepEqual(r.stderr.trim().split('\n'), [`tsunagi cycle: Redis at 127.0.0.1:${DOWN_PORT} did not answer within 2 s (ECONNREFUSED); start Redis or fix 'queue' in the config (the wait is queueWaitSeconds)`]);
  });

  it('worker waits for Redis, says so once, says once when it is back, and once per later outage', async () => {
    const file = path.join(dir, 'late.yaml');
    await writeFile(file, config(LATE_PORT));
    const child = spawn(process.execPath, [BIN, 'worker', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    const lines = () => out.split('\n').filter(Boolean);
    const count = (re: RegExp) => lines().filter((l) => re.test(l)).length;
    const until = async (pred: () => boolean, ms: number) => {
      const end = Date.now() + ms;
      while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      return pred();
    };
    try {
      assert.ok(await until(() => count(/is not answering/) > 0, 60_000), out);
      await new Promise((r) => setTimeout(r, 3000)); // several retries later
      assert.equal(count(/is not answering/), 1, out);
      assert.equal(count(/worker error|"stack"/), 0, out);
      startRedis(LATE_PORT);
      assert.ok(await until(() => count(/worker ready/) === 1, 30_000), out);
      assert.equal(count(/Redis is back/), 1, out);
      // Redis goes away under running workers: one line, not one per reconnect; one when back.
      stopRedis(LATE_PORT);
      assert.ok(await until(() => count(/is not answering/) === 2, 20_000), out);
      await new Promise((r) => setTimeout(r, 3000));
      assert.equal(count(/is not answering/), 2, out);
      assert.equal(count(/"level":50/), 0, `no error-level lines: ${out}`);
      startRedis(LATE_PORT);
      assert.ok(await until(() => count(/Redis is back/) === 2, 40_000), out);
      assert.equal(count(/^\s*(Error:|at )/), 0, `no bare stack traces on the console (BullMQ prints them for a queue without an error listener): ${out}`);
      // And it still stops on SIGTERM after the outages.
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      assert.ok(await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 20_000))]), `worker did not exit within 20 s of SIGTERM: ${out.slice(-2000)}`);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
