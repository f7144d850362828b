// Connections broken at random points, then restarted with 再送要求: the landed file is
// byte-identical, lands once, and the resumed session sends only what the receiver lacks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ZenginClient } from '../../protocols/zengin/client.ts';
import { makeFile, startCuttingProxy, startHarness, type Harness } from './zengin-helpers.ts';

const RECORDS = 2000; // 200 data messages of 10 records at maxText 2048
const SIZE = RECORDS * 200;
const TEXTS = 200;
/** Bytes the primary sends in a whole 連絡 session for one file (開局, 開始, data, 終了). */
const SESSION_BYTES = 69 + 69 + SIZE + TEXTS * 5 + 69;

async function landedFor(h: Harness, data: Buffer): Promise<number> {
  let n = 0;
  for (const f of await h.inbound()) if ((await readFile(path.join(h.spool.inbound('merchant1'), f))).equals(data)) n++;
  return n;
}

function randomCut(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min));
}

test('a push broken at random points resumes with 再送要求 and lands byte-identical, once', async () => {
  const h = await startHarness();
  try {
    const cuts = [1, 40, 69, 100, 138, 150, 2200, SESSION_BYTES - 69, SESSION_BYTES - 1, SESSION_BYTES];
    for (let i = 0; i < 8; i++) cuts.push(randomCut(10_000, SIZE));
    for (const [i, cut] of cuts.entries()) {
      const data = makeFile('31', RECORDS, 200);
      const src = path.join(h.dir, `src${i}`);
      await writeFile(src, data);
      const proxy = await startCuttingProxy(h.listener.port, [cut]);
      try {
        const client = new ZenginClient(await h.endpoint({ port: proxy.port, restartAttempts: 3 }));
        await client.push(src, 'ZGN310000001');
        assert.equal(await landedFor(h, data), 1, `cut at ${cut}: one identical landed file`);
        assert.equal(proxy.connections(), 2, `cut at ${cut}`);
        if (cut >= 10_000 && cut < SIZE) {
          // Resumed, not resent: the second session sent only what the receiver lacked (+ one message of slack).
          assert.ok(proxy.forwarded() <= SESSION_BYTES + 2 * 2048 + 69 * 4, `cut at ${cut}: ${proxy.forwarded()} bytes forwarded`);
        }
      } finally {
        await proxy.close();
      }
    }
    assert.equal((await h.inbound()).length, cuts.length);
    assert.deepEqual(await readdir(path.join(h.spool.work, 'zengin-partial', 'merchant1')), []);
  } finally {
    await h.close();
  }
});

test('several breaks in a row, with the wrapper and an ACK window', async () => {
  const h = await startHarness({ account: { wrapper: { enabled: true, ackEvery: 4 } } });
  try {
    const data = makeFile('31', RECORDS, 200);
    await writeFile(path.join(h.dir, 'src'), data);
    const cuts = [randomCut(5_000, SIZE / 3), randomCut(5_000, SIZE / 3), randomCut(5_000, SIZE / 3)];
    const proxy = await startCuttingProxy(h.listener.port, cuts);
    try {
      const client = new ZenginClient(await h.endpoint({ port: proxy.port, restartAttempts: 5, wrapper: { enabled: true, ackEvery: 4 } }));
      await client.push(path.join(h.dir, 'src'), '31');
      assert.equal(proxy.connections(), 4);
      assert.equal(await landedFor(h, data), 1);
    } finally {
      await proxy.close();
    }
  } finally {
    await h.close();
  }
});

test('a restart by another process: the caller says the previous attempt broke ({ restart: true })', async () => {
  const h = await startHarness();
  try {
    const data = makeFile('31', RECORDS, 200);
    await writeFile(path.join(h.dir, 'src'), data);
    const cut = randomCut(SIZE / 2, SIZE);
    const proxy = await startCuttingProxy(h.listener.port, [cut]);
    try {
      const first = new ZenginClient(await h.endpoint({ port: proxy.port, restartAttempts: 0 }));
      await assert.rejects(first.push(path.join(h.dir, 'src'), '31'), /connection/);
    } finally {
      await proxy.close();
    }
    assert.deepEqual(await h.inbound(), [], 'nothing half-received is published');
    const partials = await readdir(path.join(h.spool.work, 'zengin-partial', 'merchant1'));
    assert.ok(partials.some((f) => f.endsWith('.data')), 'the receiver keeps the partial outside inbound');
    const watch = await startCuttingProxy(h.listener.port, []);
    try {
      const second = new ZenginClient(await h.endpoint({ port: watch.port }));
      await second.sendFiles([{ localPath: path.join(h.dir, 'src'), remoteName: '31' }], { restart: true });
      assert.ok(watch.forwarded() < SESSION_BYTES - cut + 2 * 2048 + 69 * 4, `resumed: ${watch.forwarded()} bytes`);
    } finally {
      await watch.close();
    }
    assert.equal(await landedFor(h, data), 1);
    // A 再送要求 for a file the receiver holds nothing of starts from message 1.
    const other = makeFile('31', 50, 200);
    await writeFile(path.join(h.dir, 'other'), other);
    await new ZenginClient(await h.endpoint()).sendFiles([{ localPath: path.join(h.dir, 'other'), remoteName: '31' }], { restart: true });
    assert.equal(await landedFor(h, other), 1);
  } finally {
    await h.close();
  }
});
