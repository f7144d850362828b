// Data messages as the sender puts them on the wire (dataTexts blocks, corked writes): exactly the
// messages the spec describes, with and without the 8-byte wrapper, across read blocks and with a
// shorter last message. The peer reads late, so that the sender waits for 'drain' with messages
// corked (that deadlocked once: corked bytes never drain).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { dataTexts } from '../../protocols/zengin/data-source.ts';
import { ZenginLink } from '../../protocols/zengin/link.ts';

const RECORD = 120;
const PER_TEXT = 30; // 3,600-byte payloads: a 4 MiB read block holds 1,165 of them

/** Sends `file` through a link and returns every byte the peer received. */
async function wireBytes(file: string, size: number, wrapper: boolean): Promise<Buffer> {
  const received: Buffer[] = [];
  let peerDone!: () => void;
  const peerClosed = new Promise<void>((r) => (peerDone = r));
  const server = net.createServer((s) => {
    s.pause();
    setTimeout(() => s.resume(), 300);
    s.on('data', (d: Buffer) => received.push(d));
    s.on('end', () => {
      s.end();
      peerDone();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  // ackEvery above the message count: the window never waits (nothing answers ACKs here)
  const link = new ZenginLink(socket, { wrapper, ackEvery: 1 << 20, maxText: 32000, timeoutMs: 10_000 });
  const fh = await open(file, 'r');
  try {
    for await (const { seq, payload } of dataTexts(fh, size, RECORD, PER_TEXT, 1)) {
      assert.equal(await link.sendData(seq, payload, 'pc'), null);
    }
    await link.send(Buffer.from('end')); // any send writes out what is pending
  } finally {
    await fh.close();
  }
  await link.close();
  await peerClosed;
  server.close();
  return Buffer.concat(received);
}

test('the sender puts exactly the spec messages on the wire, also when the peer reads late', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'zengin-framing-'));
  try {
    // two and a bit read blocks, the last message shorter
    const records = 2 * 1165 * PER_TEXT + 7 * PER_TEXT + 11;
    const data = randomBytes(records * RECORD);
    const file = path.join(dir, 'data');
    await writeFile(file, data);
    for (const wrapper of [false, true]) {
      const expected: Buffer[] = [];
      let seq = 1;
      for (let at = 0; at < data.length; at += RECORD * PER_TEXT, seq++) {
        const payload = data.subarray(at, Math.min(at + RECORD * PER_TEXT, data.length));
        const ttc = Buffer.from([0x11, seq >> 8, seq & 0xff, (payload.length + 5) >> 8, (payload.length + 5) & 0xff]);
        if (wrapper) expected.push(Buffer.from([(payload.length + 13) >> 8, (payload.length + 13) & 0xff, 0x10, 0, 0, 0, 0, 0]));
        expected.push(ttc, payload);
      }
      expected.push(Buffer.from('end'));
      const want = Buffer.concat(expected);
      // the wrapper frames 'end' as a message too
      const got = await wireBytes(file, data.length, wrapper);
      if (!wrapper) assert.ok(got.equals(want), 'bytes on the wire are not the spec messages');
      else assert.ok(got.subarray(0, want.length - 3).equals(want.subarray(0, want.length - 3)), 'wrapped data messages differ');
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
