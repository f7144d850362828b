// 全銀TCP/IP robustness (issue 12): bytes that are not a TTC header close the connection at once;
// a 閉局要求 never carries a file-control code that reads as another session-control code; an
// echo mismatch in 開始回答 names the field that differed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { ZenginClient } from '../../protocols/zengin/client.ts';
import { ZenginLink } from '../../protocols/zengin/link.ts';
import { FileKind, Result, SessionKind, bcdTimestamp, codeBytes, decodeFileControl, encodeFileControl, encodeSessionControl } from '../../protocols/zengin/messages.ts';
import { CENTRE_CODE, MERCHANT_CODE, makeFile, startHarness } from './zengin-helpers.ts';
import { checkFramesRunningPastWhatWasSent } from './zengin-raw.ts';

/** Sends `bytes`, returns how long the listener took to close, and what it sent back. */
async function closesAfter(port: number, bytes: Buffer): Promise<{ ms: number; got: Buffer }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const chunks: Buffer[] = [];
  socket.on('data', (c) => chunks.push(c));
  socket.on('error', () => undefined);
  const t0 = Date.now();
  socket.write(bytes);
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { ms: Date.now() - t0, got: Buffer.concat(chunks) };
}

test('bytes that are not a TTC header (HTTP, a TLS hello) close the connection at once, not at the idle timeout', async () => {
  const h = await startHarness({ listener: { inactivitySeconds: 10 } });
  try {
    const http = await closesAfter(h.listener.port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    assert.ok(http.ms < 2000, `HTTP request: closed after ${http.ms} ms`);
    assert.equal(http.got.length, 0, 'nothing 全銀 sent to a peer that does not speak it');
    // A TLS client on the plain port.
    const hello: Buffer[] = [];
    const probe = tls.connect({ port: h.listener.port, host: '127.0.0.1', rejectUnauthorized: false });
    probe.on('error', () => undefined);
    const t0 = Date.now();
    await new Promise<void>((resolve) => probe.once('close', () => resolve()));
    assert.ok(Date.now() - t0 < 2000, `TLS hello: closed after ${Date.now() - t0} ms`);
    assert.equal(hello.length, 0);
  } finally {
    await h.close();
  }
});

test('the client ends a session after an echo mismatch naming the field, with a 閉局要求 whose code is not 0x13', async () => {
  const h = await startHarness();
  // A secondary that logs the client in, then answers 開始要求 with another access key.
  let closeCode = -1;
  const fake = net.createServer(async (socket) => {
    socket.on('error', () => undefined);
    const link = new ZenginLink(socket, { wrapper: false, ackEvery: 1, maxText: 32767, timeoutMs: 5000 });
    try {
      await link.readMessage(); // 開局要求
      await link.send(encodeSessionControl({ kind: SessionKind.openResponse, result: Result.ok, receiverCode: codeBytes(MERCHANT_CODE), senderCode: codeBytes(CENTRE_CODE), timestamp: bcdTimestamp(), password: Buffer.alloc(6), applicationId: '0', mode: '0' }));
      const start = decodeFileControl(await link.readMessage());
      await link.send(encodeFileControl({ ...start, kind: FileKind.startResponse, accessKey: 'WRONG1' }));
      const bye = await link.readMessage();
      if (bye[5] === SessionKind.closeRequest) closeCode = bye[6]!;
    } catch {
      // the client closed
    }
    socket.destroy();
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
  try {
    const file = path.join(h.dir, 'upload.dat');
    await writeFile(file, makeFile('31', 3, 200));
    const client = new ZenginClient(await h.endpoint({ port: (fake.address() as net.AddressInfo).port, restartAttempts: 0 }));
    await assert.rejects(client.push(file, '31'), (err: Error) => {
      assert.match(err.message, /ファイルアクセスキー \(accessKey\) is 'WRONG1', asked for 'KEY031'/);
      assert.doesNotMatch(err.message, /names ZGN310000001, asked for ZGN310000001/);
      return true;
    });
    await client.close().catch(() => undefined);
    for (let i = 0; i < 50 && closeCode < 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(closeCode, Result.other, 'a 閉局要求 with 0x99 (other), not a code that reads as another session error');
  } finally {
    await new Promise<void>((r) => fake.close(() => r()));
    await h.close();
  }
});

test('a message whose length runs past what was sent is held no longer than the inactivity timeout, before and after login; a control header of another length is refused at once', async () => {
  const h = await startHarness({ listener: { inactivitySeconds: 1, maxUnauthenticatedPerAddress: 10 } });
  try {
    await checkFramesRunningPastWhatWasSent(h.listener.port, 1000);
  } finally {
    await h.close();
  }
});
