// With `queue: redis://`, the console mounts bull-board under /ops/queues for operators only, and
// health and metrics read BullMQ's queue depth.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { SessionStore } from '../../web/sessions.ts';
import { startPortalCentre, type PortalCentre } from './portal-centre.ts';

const run = promisify(execFile);
const REDIS_URL = `${process.env.TSUNAGI_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'}/9`;

describe('bull-board in the operator console', { timeout: 60_000 }, () => {
  let c: PortalCentre;
  after(async () => {
    await c?.stop();
    if (c) await rm(c.dir, { recursive: true, force: true });
  });

  it('is mounted for operators only and health reads the BullMQ queues', async () => {
    c = await startPortalCentre({ queue: REDIS_URL });
    const sessions = new SessionStore(c.centre.ledger, 3600_000);
    const operator = await sessions.create('ops', true);
    const merchant = await sessions.create('tokyo-user', true);
    const status = async (p: string, token?: string) =>
      (await run('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', ...(token ? ['-H', `cookie: tsunagi_session=${token}`] : []), `${c.url}${p}`])).stdout;
    assert.equal(await status('/ops/queues', operator), '200');
    const { stdout } = await run('curl', ['-sk', '-H', `cookie: tsunagi_session=${operator}`, `${c.url}/ops/queues/api/queues`]);
    assert.ok(JSON.parse(stdout).queues.length >= 10, 'one queue per job kind');
    assert.equal(await status('/ops/queues/api/queues', merchant), '403');
    assert.equal(await status('/ops/queues/api/queues'), '303', 'to the login page');
    const health = JSON.parse((await run('curl', ['-sk', `${c.url}/healthz`])).stdout);
    assert.equal(health.checks.queue.ok, true);
    assert.match(health.checks.queue.detail, /^bullmq/);
  });
});
