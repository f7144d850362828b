// 全銀 開局要求 with wrong passwords: each failure waits longer, ten lock the centre code out (the
// right password then gets 0x14 too). (The alert is LoginFailures', tested with FTP and SFTP.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionKind, passwordBytes } from '../../protocols/zengin/messages.ts';
import { startHarness } from './zengin-helpers.ts';
import { RawPeer, openRequest } from './zengin-raw.ts';

async function attempt(port: number, password: string): Promise<number> {
  const peer = await RawPeer.connect(port);
  try {
    peer.write(openRequest({ password: passwordBytes(password, 'ebcdic') }));
    const r = await peer.read();
    assert.equal(r[5], SessionKind.openResponse);
    return r[6]!;
  } finally {
    peer.destroy();
  }
}

test('ten wrong 開局要求 lock the code out for the right password too, with growing delays', async () => {
  const h = await startHarness({ listener: { failureDelayMs: 5, maxUnauthenticatedPerAddress: 20 } });
  try {
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = Date.now();
      assert.equal(await attempt(h.listener.port, 'WRONG1'), 0x14);
      times.push(Date.now() - t);
    }
    assert.ok(times[9]! > times[0]! + 500, `later attempts wait longer (${times.join(', ')} ms)`);
    assert.equal(await attempt(h.listener.port, 'PASS01'), 0x14, 'locked: the right password is refused as a wrong one');
  } finally {
    await h.close();
  }
});
