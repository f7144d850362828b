// Async MDNs both ways (openssl verifies the one we send; ours come back to our receipt URL and
// finish the push), resend after the MDN deadline under the same Message-ID, a late MDN, and the
// listener's bounds: an oversized body and a slow client are cut off while others are served.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { As2Client } from '../../protocols/as2/client.ts';
import { as2EndpointSchema, loadPartnership, type As2Endpoint } from '../../protocols/as2/config.ts';
import { buildMessage } from '../../protocols/as2/build.ts';
import { loadOwnKey } from '../../protocols/as2/certs.ts';
import { readFile } from 'node:fs/promises';
import { account, as2Headers, makeKey, openssl, PAYLOAD, payloadEntity, post, readInbound, splitSmime, startListener, type KeyFiles, type ListenerStand } from './as2-helpers.ts';

let dir: string;
let ours: KeyFiles;
let partner: KeyFiles;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-as2-async-'));
  [ours, partner] = await Promise.all(['ours', 'partner'].map((n) => makeKey(dir, n)));
});

function capture(): Promise<{ port: number; got: Array<{ headers: http.IncomingHttpHeaders; body: Buffer }>; close(): void; status: { code: number } }> {
  const got: Array<{ headers: http.IncomingHttpHeaders; body: Buffer }> = [];
  const status = { code: 200 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(status.code).end();
    });
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ port: (server.address() as { port: number }).port, got, close: () => server.close(), status })));
}

async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, ms = 10_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('async MDNs', () => {
  let stand: ListenerStand;
  before(async () => {
    stand = await startListener([{ partnerId: 'm-as2', account: account({ keys: [{ cert: { file: ours.cert }, key: { file: ours.key } }], partnerCertificates: [{ file: partner.cert }] }) }], { mdnRetrySeconds: 0.2 });
  });
  after(async () => stand?.stop());

  test('openssl-built message asking an async MDN: empty 200 first, then a signed MDN openssl verifies, retried until delivered', async () => {
    const cap = await capture();
    cap.status.code = 503; // the partner's receipt URL fails at first
    const entityFile = path.join(dir, 'async-entity');
    await writeFile(entityFile, payloadEntity(PAYLOAD, 'ASYNC.dat'));
    const signed = await openssl(['cms', '-sign', '-binary', '-crlfeol', '-md', 'sha256', '-signer', partner.cert, '-inkey', partner.key, '-in', entityFile]);
    const encFile = path.join(dir, 'async-signed');
    await writeFile(encFile, signed.subarray(signed.indexOf('Content-Type')));
    const der = await openssl(['cms', '-encrypt', '-binary', '-aes-256-gcm', '-recip', ours.cert, '-outform', 'DER', '-in', encFile]);
    const id = `<async-${Date.now()}@partner>`;
    const a = await post(stand.port, '/as2', { ...as2Headers('PARTNER AS2', 'TSUNAGI', id, { 'Receipt-Delivery-Option': `http://127.0.0.1:${cap.port}/mdn` }), 'Content-Type': 'application/pkcs7-mime; smime-type=authEnveloped-data' }, der);
    assert.equal(a.status, 200);
    assert.equal(a.body.length, 0);
    // Queued durably before landing: the file is there even though the MDN is not delivered yet.
    await waitFor('landing', async () => (await readInbound(stand.spool, 'm-as2')).get('ASYNC.dat'));
    await waitFor('a failed MDN attempt', () => cap.got.length >= 1 || undefined);
    cap.status.code = 200;
    await waitFor('the MDN delivered', async () => (await stand.ledger.ledger.db('as2_received').where({ message_id: id }).first())?.mdn_state === 'sent' || undefined);
    const last = cap.got.at(-1)!;
    const smime = path.join(dir, 'async-mdn.smime');
    await writeFile(smime, Buffer.concat([Buffer.from(`MIME-Version: 1.0\r\nContent-Type: ${last.headers['content-type']}\r\n\r\n`), last.body]));
    const report = (await openssl(['cms', '-verify', '-in', smime, '-CAfile', ours.cert, '-binary', '-crlfeol'])).toString('latin1');
    assert.match(report, new RegExp(`Original-Message-ID: ${id}`));
    assert.match(report, /Disposition: automatic-action\/MDN-sent-automatically; processed\r\n/);
    assert.equal(last.headers['as2-from'], 'TSUNAGI');
    cap.close();
  });
});

describe('our client with async MDNs through our receipt URL', () => {
  let mine: ListenerStand;
  let theirs: ListenerStand;
  let endpoint: As2Endpoint;
  before(async () => {
    // Our centre: its listener takes the partner's MDNs; its ledger is the client's.
    mine = await startListener([{ partnerId: 'cc', account: account({ keys: [{ cert: { file: ours.cert }, key: { file: ours.key } }], partnerCertificates: [{ file: partner.cert }] }) }]);
    // The partner: another AS2 endpoint (ours, run for the partner), which answers async.
    theirs = await startListener([{ partnerId: 'tsunagi', account: account({ id: 'TSUNAGI', ourId: 'PARTNER AS2', keys: [{ cert: { file: partner.cert }, key: { file: partner.key } }], partnerCertificates: [{ file: ours.cert }] }) }]);
    endpoint = as2EndpointSchema.parse({ protocol: 'as2', url: `http://127.0.0.1:${theirs.port}/as2`, mdn: 'async', receiptUrl: `http://127.0.0.1:${mine.port}/as2/mdn`, mdnTimeoutSeconds: 20 });
  });
  after(async () => {
    await mine?.stop();
    await theirs?.stop();
  });

  const client = (e: As2Endpoint, stand = mine) =>
    new As2Client({ partnership: loadPartnership('cc', account({ keys: [{ cert: { file: ours.cert }, key: { file: ours.key } }], partnerCertificates: [{ file: partner.cert }] })), endpoint: e, ledger: stand.ledger.ledger, log: pino({ level: 'silent' }), pollMs: 50 });

  test('push returns once the signed async MDN reached our receipt URL, correlated by Original-Message-ID', async () => {
    const f = path.join(dir, 'OUT_ASYNC.dat');
    await writeFile(f, PAYLOAD);
    const r = await client(endpoint).push(f, 'OUT_ASYNC.dat');
    assert.equal(r.bytes, PAYLOAD.length);
    assert.deepEqual((await readInbound(theirs.spool, 'tsunagi')).get('OUT_ASYNC.dat'), PAYLOAD);
    const row = await mine.ledger.ledger.db('as2_sent').where({ remote_name: 'OUT_ASYNC.dat' }).first();
    assert.equal(row.state, 'processed');
    assert.match(row.disposition, /processed/);
  });

  test('no MDN by the deadline: the push fails, the resend keeps the Message-ID; a late MDN completes the next push', async () => {
    const cap = await capture(); // answers 200 and never sends an MDN
    const e = { ...endpoint, url: `http://127.0.0.1:${cap.port}/as2`, mdnTimeoutSeconds: 0.3 };
    const f = path.join(dir, 'OUT_LATE.dat');
    await writeFile(f, Buffer.from('late mdn\n'));
    await assert.rejects(client(e).push(f, 'OUT_LATE.dat'), /no async MDN/);
    await assert.rejects(client(e).push(f, 'OUT_LATE.dat'), /no async MDN/);
    assert.equal(cap.got.length, 2);
    assert.equal(cap.got[0]!.headers['message-id'], cap.got[1]!.headers['message-id']);
    assert.equal(cap.got[0]!.headers['receipt-delivery-option'], endpoint.receiptUrl);
    // With newMessageIdOnResend the third send gets a new id.
    await assert.rejects(client({ ...e, newMessageIdOnResend: true }).push(f, 'OUT_LATE.dat'), /no async MDN/);
    assert.notEqual(cap.got[2]!.headers['message-id'], cap.got[0]!.headers['message-id']);
    // The partner's MDN for the third message arrives late, built the way the partner builds it.
    const pending = String(cap.got[2]!.headers['message-id']);
    const mics = JSON.parse((await mine.ledger.ledger.db('as2_sent').where({ message_id: pending }).first()).mics);
    const report = Buffer.from(
      `Content-Type: multipart/report; report-type=disposition-notification; boundary="r"\r\n\r\n--r\r\nContent-Type: message/disposition-notification\r\n\r\nOriginal-Message-ID: ${pending}\r\nDisposition: automatic-action/MDN-sent-automatically; processed\r\nReceived-Content-MIC: ${mics.sha256}, sha256\r\n\r\n--r--\r\n`,
    );
    const rf = path.join(dir, 'late-report');
    await writeFile(rf, report);
    const signed = splitSmime(await openssl(['cms', '-sign', '-binary', '-crlfeol', '-md', 'sha256', '-signer', partner.cert, '-inkey', partner.key, '-in', rf]));
    const a = await post(mine.port, '/as2/mdn', { ...signed.headers, 'AS2-From': 'PARTNER AS2', 'AS2-To': 'TSUNAGI' }, signed.body);
    assert.equal(a.status, 200);
    const before = cap.got.length;
    await client(e).push(f, 'OUT_LATE.dat'); // done: the MDN had arrived
    assert.equal(cap.got.length, before, 'not sent again');
    cap.close();
  });
});

describe('listener bounds', () => {
  let stand: ListenerStand;
  before(async () => {
    stand = await startListener([{ partnerId: 'm-as2', account: account({ requireSigned: false, keys: [{ cert: { file: ours.cert }, key: { file: ours.key } }], partnerCertificates: [{ file: partner.cert }] }) }], {
      maxBodyBytes: 64 * 1024,
      requestTimeoutSeconds: 1,
      headersTimeoutSeconds: 1,
    });
  });
  after(async () => stand?.stop());

  async function goodMessage(name: string) {
    const m = buildMessage(PAYLOAD, { fileName: name, contentType: 'application/octet-stream', transferEncoding: 'binary', compress: 'none', encrypt: { cert: loadOwnKey(await readFile(ours.cert), await readFile(ours.key)).certificate, cipher: 'aes256-cbc', keyTransport: 'rsa-pkcs1' } });
    return post(stand.port, '/as2', { ...as2Headers('PARTNER AS2', 'TSUNAGI', `<${name}@p>`), ...Object.fromEntries(m.headers) }, Buffer.concat([...m.body]));
  }

  test('an oversized body is refused (declared or streamed) and others are still served', async () => {
    const big = Buffer.alloc(200 * 1024, 0x41);
    const a = await post(stand.port, '/as2', { ...as2Headers('PARTNER AS2', 'TSUNAGI', '<big@p>'), 'Content-Type': 'application/octet-stream' }, big).catch((err: Error) => ({ status: 0, err }));
    assert.ok(a.status === 413 || a.status === 0, `status ${a.status}`);
    // Chunked, no Content-Length: cut off once past the limit.
    const streamed = await new Promise<number>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: stand.port, path: '/as2', method: 'POST', headers: { ...as2Headers('PARTNER AS2', 'TSUNAGI', '<big2@p>'), 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', () => resolve(0));
      const chunk = Buffer.alloc(16 * 1024, 0x42);
      let sent = 0;
      const pump = () => {
        while (sent < 100 && req.write(chunk)) sent++;
        if (sent < 100) req.once('drain', pump);
        else req.end();
      };
      pump();
    });
    assert.ok(streamed === 413 || streamed === 0, `status ${streamed}`);
    const ok = await goodMessage('AFTER_BIG.dat');
    assert.equal(ok.status, 200);
    assert.match(ok.body.toString('latin1'), /; processed\r\n/);
    await waitFor('landing', async () => (await readInbound(stand.spool, 'm-as2')).size === 1 || undefined);
  });

  test('a slow client is cut off; a normal client meanwhile is answered', async () => {
    const socket = net.connect(stand.port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise((r) => socket.once('connect', r));
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
    const started = Date.now();
    socket.write(`POST /as2 HTTP/1.1\r\nHost: x\r\nAS2-From: PARTNER AS2\r\nAS2-To: TSUNAGI\r\nMessage-ID: <slow@p>\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n`);
    const trickle = setInterval(() => socket.writable && socket.write('x'), 200);
    const ok = await goodMessage('DURING_SLOW.dat');
    assert.equal(ok.status, 200);
    const at = await Promise.race([closed, sleep(8000).then(() => 0)]);
    clearInterval(trickle);
    socket.destroy();
    assert.ok(at > 0, 'the slow client was not cut off');
    assert.ok(at - started < 6000, `cut off after ${at - started} ms`);
    await waitFor('landing', async () => (await readInbound(stand.spool, 'm-as2')).has('DURING_SLOW.dat') || undefined);
  });
});

describe('a stalled body', () => {
  let stand: ListenerStand;
  before(async () => {
    stand = await startListener([{ partnerId: 'm-as2', account: account({ requireSigned: false, keys: [{ cert: { file: ours.cert }, key: { file: ours.key } }], partnerCertificates: [{ file: partner.cert }] }) }], {
      requestTimeoutSeconds: 120,
      bodyIdleSeconds: 1,
    });
  });
  after(async () => stand?.stop());

  test('a body whose Content-Length runs past what was sent is cut off when it stops, not held for the request time', async () => {
    const socket = net.connect(stand.port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise((r) => socket.once('connect', r));
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
    socket.write(`POST /as2 HTTP/1.1\r\nHost: x\r\nAS2-From: PARTNER AS2\r\nAS2-To: TSUNAGI\r\nMessage-ID: <stalled@p>\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n`);
    socket.write(Buffer.alloc(5000, 0x41));
    const stalledAt = Date.now();
    const at = await Promise.race([closed, sleep(10_000).then(() => 0)]);
    socket.destroy();
    assert.ok(at > 0, 'the stalled body was still held after 10 s');
    assert.ok(at - stalledAt >= 900 && at - stalledAt < 5000, `cut off after ${at - stalledAt} ms`);
    assert.equal((await readInbound(stand.spool, 'm-as2')).size, 0, 'nothing of the stalled body landed');
  });
});
