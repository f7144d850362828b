// Our primary against our secondary: both modes, several files a session, the wrapper, host form,
// and every result code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, utimes, readdir } from 'node:fs/promises';
import path from 'node:path';
import { ZenginClient } from '../../protocols/zengin/client.ts';
import { ZenginError } from '../../protocols/zengin/primary.ts';
import { FileKind, Result, SessionKind, encodeDataHeader, encodeTtc } from '../../protocols/zengin/messages.ts';
import { listAudit } from '../../spool/ledger/audit.ts';
import { OTHER_CODE, makeFile, startHarness, type Harness } from './zengin-helpers.ts';
import { RawPeer, closeRequest, fileControl, openRequest } from './zengin-raw.ts';

async function withHarness(fn: (h: Harness) => Promise<void>, options?: Parameters<typeof startHarness>[0]): Promise<void> {
  const h = await startHarness(options);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

const isCode = (result: number, stage?: string) => (err: unknown) => {
  assert.ok(err instanceof ZenginError, `expected a ZenginError, got ${String(err)}`);
  assert.equal(err.result, result, err.message);
  if (stage) assert.equal(err.stage, stage);
  return true;
};

test('連絡: a file lands byte-identical in the partner inbound, audited, with onLanded', () =>
  withHarness(async (h) => {
    const data = makeFile('31', 1234, 200);
    const src = path.join(h.dir, 'sales.dat');
    await writeFile(src, data);
    const client = new ZenginClient(await h.endpoint());
    const result = await client.push(src, 'ZGN310000001');
    assert.deepEqual(result, { remoteName: 'ZGN310000001', bytes: data.length });
    const files = await h.inbound();
    assert.equal(files.length, 1);
    assert.match(files[0]!, /^ZGN310000001_31_\d{14}_[0-9a-f]{8}$/);
    assert.deepEqual(await readFile(path.join(h.spool.inbound('merchant1'), files[0]!)), data);
    assert.equal(h.landed.length, 1);
    const events = (await listAudit(h.ledger, { protocol: 'zengin' })).map((r) => r.event);
    assert.deepEqual(events, ['login_ok', 'upload', 'session_end']);
    assert.deepEqual(await readdir(path.join(h.spool.work, 'zengin-partial', 'merchant1')), []);
  }));

test('連絡: several files in one session; a push by file type; the same bytes again are a duplicate (0x16)', () =>
  withHarness(async (h) => {
    const a = makeFile('31', 500, 200);
    const b = makeFile('41', 77, 120);
    await writeFile(path.join(h.dir, 'a'), a);
    await writeFile(path.join(h.dir, 'b'), b);
    const client = new ZenginClient(await h.endpoint({ maxText: 4096 }), undefined);
    const results = await client.sendFiles([
      { localPath: path.join(h.dir, 'a'), remoteName: 'ZGN310000001' },
      { localPath: path.join(h.dir, 'b'), remoteName: '41' },
    ]);
    assert.deepEqual(results.map((r) => r.bytes), [a.length, b.length]);
    assert.equal((await h.inbound()).length, 2);
    assert.equal((await listAudit(h.ledger)).filter((r) => r.event === 'login_ok').length, 1);
    const again = await client.push(path.join(h.dir, 'a'), 'ZGN310000001');
    assert.equal((again as { duplicate?: boolean }).duplicate, true);
    assert.equal((await h.inbound()).length, 2, 'a duplicate does not land twice');
    // New bytes under the same name are a new cycle.
    await writeFile(path.join(h.dir, 'a2'), makeFile('31', 500, 200));
    await client.push(path.join(h.dir, 'a2'), 'ZGN310000001');
    assert.equal((await h.inbound()).length, 3);
  }, { account: { maxText: 4096 } }));

test('照会: the newest file of the mapped type not yet picked up is served, then the next, then 0x17', () =>
  withHarness(async (h) => {
    const out = h.spool.outbound('merchant1');
    const older = makeFile('33', 300, 200);
    const newer = makeFile('33', 40, 200);
    await writeFile(path.join(out, 'result-older.dat'), older);
    await writeFile(path.join(out, 'result-newer.dat'), newer);
    await writeFile(path.join(out, 'reject.dat'), makeFile('91', 3, 120));
    await utimes(path.join(out, 'result-older.dat'), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const client = new ZenginClient(await h.endpoint());
    const target = path.join(h.dir, 'got');
    const first = await client.pull('ZGN330000001', target);
    assert.equal(first.bytes, newer.length);
    assert.deepEqual(await readFile(target), newer);
    const results = await client.receiveFiles([
      { remoteName: '33', localPath: path.join(h.dir, 'got2') },
      { remoteName: 'ZGN330000001', localPath: path.join(h.dir, 'got3') },
      { remoteName: 'ZGN910000001', localPath: path.join(h.dir, 'got4') },
    ]);
    assert.equal(results[0]!.bytes, older.length);
    assert.deepEqual(await readFile(path.join(h.dir, 'got2')), older);
    assert.equal(results[1], null, 'nothing left of type 33: 0x17, session goes on');
    assert.equal(results[2]!.bytes, 360);
    assert.deepEqual(h.pickedUp.map((p) => p.fileName), ['result-newer.dat', 'result-older.dat', 'reject.dat']);
    await assert.rejects(client.pull('ZGN330000001', target), isCode(Result.noFileToSend, '開始'));
    const downloads = (await listAudit(h.ledger)).filter((r) => r.event === 'download');
    assert.equal(downloads.length, 3);
  }));

test('the wrapper with an ACK window, and host form, in both modes', () =>
  withHarness(
    async (h) => {
      const data = makeFile('31', 3000, 200);
      await writeFile(path.join(h.dir, 'a'), data);
      await writeFile(path.join(h.spool.outbound('merchant1'), 'r.dat'), makeFile('33', 2000, 200));
      const client = new ZenginClient(await h.endpoint({ wrapper: { enabled: true, ackEvery: 3 }, form: 'host', maxText: 1024 }));
      await client.push(path.join(h.dir, 'a'), 'ZGN310000001');
      const [f] = await h.inbound();
      assert.deepEqual(await readFile(path.join(h.spool.inbound('merchant1'), f!)), data);
      await client.pull('ZGN330000001', path.join(h.dir, 'r'));
      assert.deepEqual(await readFile(path.join(h.dir, 'r')), await readFile(path.join(h.spool.outbound('merchant1'), 'r.dat')));
      // A partner that does not use the agreed wrapper is refused.
      const bare = new ZenginClient(await h.endpoint({ form: 'host', maxText: 1024 }));
      await assert.rejects(bare.push(path.join(h.dir, 'a'), 'ZGN310000001'), isCode(Result.other, '開局'));
    },
    { account: { wrapper: { enabled: true, ackEvery: 3 }, form: 'host', maxText: 1024 } },
  ));

test('session-control result codes: 0x11 0x12 0x14 0x15 0x99 (form) refuse the login and are audited', () =>
  withHarness(async (h) => {
    const src = path.join(h.dir, 'a');
    await writeFile(src, makeFile('31', 10, 200));
    const push = async (overrides: object) => new ZenginClient(await h.endpoint(overrides)).push(src, 'ZGN310000001');
    await assert.rejects(push({ partnerCode: 'F0F0F0F0F00009' }), isCode(Result.receiverCodeWrong, '開局'));
    await assert.rejects(push({ ownCode: OTHER_CODE }), isCode(Result.senderCodeWrong, '開局'));
    await assert.rejects(push({ password: await h.secret('bad', 'WRONG1') }), isCode(Result.passwordWrong, '開局'));
    await assert.rejects(push({ applicationId: '1' }), isCode(Result.applicationIdWrong, '開局'));
    await assert.rejects(push({ form: 'host' }), isCode(Result.other, '開局'));
    assert.deepEqual(await h.inbound(), []);
    const refused = (await listAudit(h.ledger)).filter((r) => r.event === 'login_refused');
    assert.equal(refused.length, 5);
    assert.ok(refused.every((r) => !String(r.detail).includes('WRONG1') && !String(r.detail).includes('PASS01')));
  }));

test('session-control 0x13 outside service hours', () =>
  withHarness(
    async (h) => {
      await writeFile(path.join(h.dir, 'a'), makeFile('31', 10, 200));
      await assert.rejects(new ZenginClient(await h.endpoint()).push(path.join(h.dir, 'a'), 'ZGN310000001'), isCode(Result.outsideServiceHours, '開局'));
    },
    { account: { serviceHours: { from: '00:00', to: '00:00' } } },
  ));

test('session-control 0x16 mode wrong, 0x17 mode change refused, 0x10 unknown 電文区分', () =>
  withHarness(async (h) => {
    let peer = await RawPeer.connect(h.listener.port);
    const badMode = openRequest();
    badMode[34] = 0xf7;
    peer.write(badMode);
    let r = await peer.read();
    assert.deepEqual([r[5], r[6]], [SessionKind.openResponse, Result.modeWrong]);
    await peer.closed();

    peer = await RawPeer.connect(h.listener.port);
    await peer.login();
    peer.write(openRequest({ kind: SessionKind.modeChangeRequest, mode: '1' }));
    r = await peer.read();
    assert.deepEqual([r[5], r[6]], [SessionKind.modeChangeResponse, Result.modeChangeRefused]);
    await peer.closed();

    peer = await RawPeer.connect(h.listener.port);
    await peer.login();
    const unknown = closeRequest();
    unknown[5] = 0x2a;
    peer.write(unknown);
    r = await peer.read();
    assert.deepEqual([r[5], r[6]], [SessionKind.closeRequest, Result.unknownKind]);
    await peer.closed();
  }));

test('mode change when the account allows it', () =>
  withHarness(
    async (h) => {
      await writeFile(path.join(h.spool.outbound('merchant1'), 'r.dat'), makeFile('33', 2, 200));
      const peer = await RawPeer.connect(h.listener.port);
      await peer.login('0');
      peer.write(openRequest({ kind: SessionKind.modeChangeRequest, mode: '1' }));
      const r = await peer.read();
      assert.deepEqual([r[5], r[6], r[34]], [SessionKind.modeChangeResponse, 0, 0xf1]);
      peer.write(fileControl({ fileName: 'ZGN330000001', accessKey: 'KEY033', textCount: 0, recordCount: 0 }));
      const start = await peer.read();
      assert.deepEqual([start[5], start[6]], [FileKind.startResponse, 0]);
      assert.equal(start.readUIntBE(27, 3), 2);
      peer.destroy();
    },
    { account: { allowModeChange: true } },
  ));

test('file-control result codes: 0x11 unknown name, 0x12 key, 0x15 record length, 0x17 no file', () =>
  withHarness(async (h) => {
    const src = path.join(h.dir, 'a');
    await writeFile(src, makeFile('31', 10, 200));
    const ep = await h.endpoint();
    const withFile = (f: object) => new ZenginClient({ ...ep, files: [{ zenginName: 'ZGN310000001', accessKey: 'KEY031', fileType: '31', direction: 'send', recordLength: 200, ...f }] });
    await assert.rejects(withFile({ zenginName: 'ZGN999999999' }).push(src, '31'), isCode(Result.fileNameUnknown, '開始'));
    await assert.rejects(withFile({ accessKey: 'KEY999' }).push(src, '31'), isCode(Result.accessKeyWrong, '開始'));
    await assert.rejects(withFile({ recordLength: 100 }).push(src, '31'), isCode(Result.recordLengthWrong, '開始'));
    // A partner may not send a file it may only ask for, nor ask for one it may only send.
    await assert.rejects(withFile({ zenginName: 'ZGN330000001', accessKey: 'KEY033' }).push(src, '31'), isCode(Result.fileNameUnknown, '開始'));
    await assert.rejects(withFile({ direction: 'receive' }).pull('31', path.join(h.dir, 'x')), isCode(Result.fileNameUnknown, '開始'));
    await assert.rejects(new ZenginClient(ep).pull('ZGN330000001', path.join(h.dir, 'x')), isCode(Result.noFileToSend, '開始'));
    assert.deepEqual(await h.inbound(), []);
  }));

test('file-control 0x13 text count and 0x14 record count differ at 終了要求; nothing lands', () =>
  withHarness(async (h) => {
    const record = Buffer.alloc(200, 0x41);
    for (const [end, code] of [
      [{ textCount: 2 }, Result.textCountDiffers],
      [{ recordCount: 3 }, Result.recordCountDiffers],
    ] as const) {
      const peer = await RawPeer.connect(h.listener.port);
      await peer.login();
      peer.write(fileControl({ textCount: 0, recordCount: 0 }));
      assert.equal((await peer.read())[6], 0);
      peer.write(Buffer.concat([encodeDataHeader(1, 400), record, record]));
      peer.write(fileControl(Object.assign({ kind: FileKind.endRequest, textCount: 1, recordCount: 2 }, end)));
      const r = await peer.read();
      assert.deepEqual([r[5], r[6]], [FileKind.endResponse, code]);
      await peer.closed();
    }
    assert.deepEqual(await h.inbound(), []);
  }));

test('out of sequence, wrong sequence number, bad length, over maxText and broken records end the session', () =>
  withHarness(async (h) => {
    const rec = Buffer.alloc(200, 0x30);
    const cases: { name: string; send: Buffer; code: number }[] = [
      { name: 'data before 開始要求', send: Buffer.concat([encodeDataHeader(1, 200), rec]), code: Result.other },
      { name: '終了要求 before 開始要求', send: fileControl({ kind: FileKind.endRequest }), code: Result.other },
      { name: 'a second 開局要求', send: openRequest(), code: Result.other },
      { name: 'a control message of the wrong length', send: Buffer.concat([encodeTtc({ form: 'pc', isData: false, seq: 0, length: 70 }), Buffer.alloc(65)]), code: Result.other },
      { name: 'a length that leaves no content', send: encodeTtc({ form: 'pc', isData: true, seq: 1, length: 5 }), code: Result.other },
    ];
    for (const c of cases) {
      const peer = await RawPeer.connect(h.listener.port);
      await peer.login();
      peer.write(c.send);
      const r = await peer.read();
      assert.deepEqual([r[5], r[6]], [SessionKind.closeRequest, c.code], c.name);
      await peer.closed();
    }
    // A 閉局要求 carries session-control codes: the file-control reasons (0x13 text count, 0x14
    // record count, 0x15 record length) would read there as "outside service hours", "password
    // wrong", "application ID wrong", so they go as 0x99 (other).
    const inData: { name: string; send: Buffer; code: number }[] = [
      { name: 'sequence 2 first', send: Buffer.concat([encodeDataHeader(2, 200), rec]), code: Result.other },
      { name: 'not whole records', send: Buffer.concat([encodeDataHeader(1, 150), rec.subarray(0, 150)]), code: Result.other },
      { name: 'over maxText', send: Buffer.concat([encodeDataHeader(1, 2200), Buffer.alloc(2200)]), code: Result.other },
      { name: 'more records than announced', send: Buffer.concat([encodeDataHeader(1, 600), rec, rec, rec]), code: Result.other },
      { name: '閉局 in the middle of a file', send: closeRequest(), code: Result.other },
    ];
    for (const c of inData) {
      const peer = await RawPeer.connect(h.listener.port);
      await peer.login();
      peer.write(fileControl());
      assert.equal((await peer.read())[6], 0);
      peer.write(c.send);
      const r = await peer.read();
      assert.deepEqual([r[5], r[6]], [SessionKind.closeRequest, c.code], c.name);
      await peer.closed();
    }
    assert.deepEqual(await h.inbound(), []);
  }));

test('inactivity timeout closes an idle connection, before and after login', () =>
  withHarness(
    async (h) => {
      let peer = await RawPeer.connect(h.listener.port);
      const t0 = Date.now();
      await peer.closed(5000);
      assert.ok(Date.now() - t0 >= 900);
      peer = await RawPeer.connect(h.listener.port);
      await peer.login();
      peer.write(fileControl());
      await peer.read();
      await peer.closed(5000);
      const ends = (await listAudit(h.ledger)).filter((r) => r.event === 'session_end');
      assert.ok(ends.some((r) => String(r.detail).includes('no message')));
      assert.deepEqual(await h.inbound(), []);
    },
    { listener: { inactivitySeconds: 1 } },
  ));

test('the primary times out when the secondary says nothing', async () => {
  const net = await import('node:net');
  const held: import('node:net').Socket[] = [];
  const silent = net.createServer((s) => void held.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const h = await startHarness();
  try {
    const port = (silent.address() as import('node:net').AddressInfo).port;
    await writeFile(path.join(h.dir, 'a'), makeFile('31', 1, 200));
    const client = new ZenginClient(await h.endpoint({ port, timeoutSeconds: 0.5, restartAttempts: 0 }));
    await assert.rejects(client.push(path.join(h.dir, 'a'), '31'), /no message/);
  } finally {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
    await h.close();
  }
});

test('照会: a 終了回答 other than 0x00 leaves the file not picked up; the next ask gets it again', () =>
  withHarness(async (h) => {
    const data = makeFile('33', 25, 200);
    await writeFile(path.join(h.spool.outbound('merchant1'), 'r.dat'), data);
    const peer = await RawPeer.connect(h.listener.port);
    await peer.login('1');
    peer.write(fileControl({ fileName: 'ZGN330000001', accessKey: 'KEY033', textCount: 0, recordCount: 0 }));
    const start = await peer.read();
    assert.deepEqual([start[5], start[6], start.readUInt16BE(25), start.readUIntBE(27, 3)], [FileKind.startResponse, 0, 3, 25]);
    let msg = await peer.read();
    let texts = 0;
    while (msg[0] === 0x11) {
      texts++;
      msg = await peer.read();
    }
    assert.equal(texts, 3);
    assert.equal(msg[5], FileKind.endRequest);
    const answer = Buffer.from(msg);
    answer[5] = FileKind.endResponse;
    answer[6] = Result.textCountDiffers;
    peer.write(answer);
    await peer.closed();
    assert.deepEqual(h.pickedUp, []);
    assert.equal((await listAudit(h.ledger)).filter((r) => r.event === 'download').length, 0);
    await new ZenginClient(await h.endpoint()).pull('ZGN330000001', path.join(h.dir, 'r'));
    assert.deepEqual(await readFile(path.join(h.dir, 'r')), data);
    assert.equal(h.pickedUp.length, 1);
  }));
