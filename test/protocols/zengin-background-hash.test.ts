// The 全銀 receiver's SHA-256 runs on a worker thread: its digests must be exactly those of
// node:crypto over the same bytes, for handed-over (no copy) and ordinary buffers, with several
// files hashed at once, and a handed-over buffer comes back to be refilled.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { backgroundSha256 } from '../../protocols/zengin/background-hash.ts';

test('background SHA-256 equals node:crypto for handed-over and ordinary buffers, several at once', async () => {
  const a = backgroundSha256();
  const b = backgroundSha256();
  const expectA = createHash('sha256');
  const expectB = createHash('sha256');
  let slot: Buffer = Buffer.allocUnsafeSlow(100_000);
  for (let i = 0; i < 20; i++) {
    const bytes = randomBytes(1 + ((i * 7919) % 100_000));
    // the same memory refilled after each update: what was hashed must be the bytes at the time
    slot.set(bytes);
    expectA.update(bytes);
    const handed = slot;
    slot = await a.updateOwned(handed, bytes.length);
    assert.equal(handed.length, 0, 'handed over: detached here while the worker had it');
    assert.equal(slot.length, 100_000, 'the same memory came back');
    const other = randomBytes(i * 1000);
    expectB.update(other);
    await b.update(other);
  }
  assert.equal(await a.digest(), expectA.digest('hex'));
  assert.equal(await b.digest(), expectB.digest('hex'));
  const empty = backgroundSha256();
  assert.equal(await empty.digest(), createHash('sha256').digest('hex'));
  const dropped = backgroundSha256();
  await dropped.update(Buffer.from('partial'));
  dropped.drop();
  await assert.rejects(backgroundSha256().updateOwned(Buffer.allocUnsafe(10), 10), /owns its whole memory/, 'a pooled buffer is refused, not detached');
  const after = backgroundSha256();
  await after.update(Buffer.from('abc'));
  assert.equal(await after.digest(), createHash('sha256').update('abc').digest('hex'));
});

test('the hash worker does not keep the process alive: a file that got no byte (made, then dropped) lets it exit', () => {
  // A child process, since this one's worker has served requests already.
  const script = `import { backgroundSha256 } from ${JSON.stringify(new URL('../../protocols/zengin/background-hash.ts', import.meta.url).href)};
backgroundSha256().drop();`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 15_000, encoding: 'utf8' });
  assert.equal(r.error, undefined, `the process did not exit by itself: ${r.error?.message}`);
  assert.equal(r.status, 0, r.stderr);
});
