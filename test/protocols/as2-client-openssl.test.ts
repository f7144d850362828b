// Our AS2 client against a partner built on `openssl cms`: it decrypts and verifies what we send
// with openssl, checks the MIC against openssl's messageDigest, and answers MDNs it signs with
// openssl. Every algorithm of the spec; compression checked by printing the structure and
// inflating with zlib; MIC mismatches, failed dispositions, bad MDN signatures are failed attempts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import pino from 'pino';
import { As2Client } from '../../protocols/as2/client.ts';
import { as2EndpointSchema, loadPartnership, type As2Endpoint } from '../../protocols/as2/config.ts';
import { decode, octets } from '../../protocols/as2/der.ts';
import { parseEntity, contentTypeOf } from '../../protocols/as2/mime.ts';
import { sqliteLedger, type TestLedger } from '../helpers/ledgers.ts';
import { account, makeKey, openssl, PAYLOAD, splitSmime, type KeyFiles } from './as2-helpers.ts';

let dir: string;
let ours: KeyFiles;
let partner: KeyFiles;
let stranger: KeyFiles;
let ledger: TestLedger;
let server: http.Server;
let port: number;

interface Seen {
  headers: http.IncomingHttpHeaders;
  layers: string[];
  payload: Buffer;
  fileName?: string;
  mic: string;
  payloadHeaders: Map<string, string>;
  /** What was signed, exactly as openssl returned it. */
  signedContent?: Buffer;
}
const seen: Seen[] = [];
/** How the partner answers the next message. */
let behaviour: { disposition?: string; micOverride?: string; signer?: KeyFiles; unsigned?: boolean; status?: number; micAlg?: 'sha1' | 'sha512' } = {};
let k = 0;

async function tmp(data: Buffer): Promise<string> {
  const f = path.join(dir, `peer-${++k}`);
  await writeFile(f, data);
  return f;
}

/** The partner: take our message apart with openssl. */
async function takeApart(headers: http.IncomingHttpHeaders, body: Buffer): Promise<Seen> {
  const layers: string[] = [];
  const s: { signedContent?: Buffer } = {};
  const top = ['content-type', 'content-transfer-encoding', 'content-disposition'].filter((h) => headers[h]).map((h) => `${h}: ${headers[h]}\r\n`);
  let entity: Buffer = Buffer.concat([Buffer.from(`${top.join("")}\r\n`), body]);
  let mic: string | undefined;
  let signedMic: string | undefined;
  for (;;) {
    const e = parseEntity(entity);
    const ct = contentTypeOf(e);
    if (ct.type === 'application/pkcs7-mime' && /enveloped-data/i.test(ct.params.get('smime-type') ?? '')) {
      const printed = (await openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', await tmp(e.body)])).toString();
      const alg = /contentEncryptionAlgorithm:\s*\n\s*algorithm: (\S+)/.exec(printed)?.[1];
      const kt = /keyEncryptionAlgorithm:\s*\n\s*algorithm: (\S+)/.exec(printed)?.[1];
      layers.push(`encrypted:${alg}:${kt}`);
      entity = await openssl(['cms', '-decrypt', '-binary', '-inform', 'DER', '-in', await tmp(e.body), '-recip', partner.cert, '-inkey', partner.key]);
      mic ??= createHash('sha256').update(entity).digest('base64');
    } else if (ct.type === 'application/pkcs7-mime' && /compressed-data/i.test(ct.params.get('smime-type') ?? '')) {
      const printed = (await openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', await tmp(e.body)])).toString();
      assert.match(printed, /id-smime-ct-compressedData/);
      assert.match(printed, /zlib compression|1\.2\.840\.113549\.1\.9\.16\.3\.8|id-smime-alg-zlibCompress/);
      layers.push('compressed');
      const ci = decode(e.body);
      const compressedData = ci.children[1]!.children[0]!;
      entity = inflateSync(octets(compressedData.children[2]!.children[1]!.children[0]!));
    } else if (ct.type === 'multipart/signed') {
      const f = await tmp(Buffer.concat([Buffer.from('MIME-Version: 1.0\r\n'), entity]));
      const printed = (await openssl(['cms', '-cmsout', '-print', '-in', f])).toString();
      const md = /digestAlgorithm:\s*\n\s*algorithm: (\S+)/.exec(printed)?.[1];
      layers.push(`signed:${md}`);
      const inner = await openssl(['cms', '-verify', '-binary', '-crlfeol', '-in', f, '-CAfile', ours.cert]);
      const i = printed.indexOf('object: messageDigest');
      const block = printed.slice(i, Math.min(...[printed.indexOf('object:', i + 10), printed.indexOf('signatureAlgorithm', i)].filter((x) => x > 0)));
      const hex = [...block.matchAll(/^\s*[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -]){1,16})/gm)].map((x) => x[1]!.replace(/[ -]/g, '')).join('');
      s.signedContent ??= inner;
      signedMic ??= md === 'sha256' ? Buffer.from(hex, 'hex').toString('base64') : createHash('sha256').update(inner).digest('base64');
      entity = inner;
    } else {
      const cte = e.headers.get('content-transfer-encoding');
      const payload = cte === 'base64' ? Buffer.from(e.body.toString('latin1'), 'base64') : e.body;
      const fileName = /filename="?([^";]+)"?/.exec(e.headers.get('content-disposition') ?? '')?.[1];
      return { headers, layers, payload, fileName, signedContent: s.signedContent, mic: signedMic ?? mic ?? createHash('sha256').update(e.body).digest('base64'), payloadHeaders: e.headers };
    }
  }
}

async function signedMdn(originalId: string, mic: string, disposition: string, signer: KeyFiles | undefined, micToken = 'sha-256'): Promise<{ headers: Record<string, string>; body: Buffer }> {
  const report = Buffer.from(
    `Content-Type: multipart/report; report-type=disposition-notification; boundary="rep"\r\n\r\n` +
      `--rep\r\nContent-Type: text/plain\r\n\r\nok\r\n` +
      `--rep\r\nContent-Type: message/disposition-notification\r\n\r\nReporting-UA: openssl peer\r\nFinal-Recipient: rfc822; PARTNER AS2\r\nOriginal-Message-ID: ${originalId}\r\nDisposition: automatic-action/MDN-sent-automatically; ${disposition}\r\nReceived-Content-MIC: ${mic}, ${micToken}\r\n\r\n--rep--\r\n`,
  );
  if (!signer) return splitSmime(report);
  const signed = await openssl(['cms', '-sign', '-binary', '-crlfeol', '-md', 'sha256', '-signer', signer.cert, '-inkey', signer.key, '-in', await tmp(report)]);
  return splitSmime(signed);
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-as2-client-'));
  [ours, partner, stranger] = await Promise.all(['ours', 'partner', 'stranger'].map((n) => makeKey(dir, n)));
  ledger = await sqliteLedger();
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      try {
        const s = await takeApart(req.headers, Buffer.concat(chunks));
        seen.push(s);
        const b = behaviour;
        if (b.status) {
          res.writeHead(b.status).end('no');
          return;
        }
        if (!req.headers['disposition-notification-to']) {
          res.writeHead(200).end();
          return;
        }
        const mic = b.micAlg ? createHash(b.micAlg).update(s.signedContent!).digest('base64') : s.mic;
        const mdn = await signedMdn(String(req.headers['message-id']), b.micOverride ?? mic, b.disposition ?? 'processed', b.unsigned ? undefined : (b.signer ?? partner), b.micAlg === 'sha1' ? 'sha1' : b.micAlg === 'sha512' ? 'SHA-512' : 'sha-256');
        res.writeHead(200, { ...mdn.headers, 'Content-Length': mdn.body.length, 'AS2-From': 'PARTNER AS2', 'AS2-To': 'TSUNAGI' }).end(mdn.body);
      } catch (err) {
        res.writeHead(500).end(String((err as Error).stack));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as { port: number }).port;
});
after(async () => {
  server?.close();
  await ledger?.dispose();
});

function client(over: Partial<As2Endpoint>): As2Client {
  const endpoint = as2EndpointSchema.parse({ protocol: 'as2', url: `http://127.0.0.1:${port}/as2`, ...over });
  const partnership = loadPartnership('cc-as2', account({ keys: [{ cert: { file: ours.cert }, key: { file: ours.key } }], partnerCertificates: [{ file: partner.cert }] }));
  return new As2Client({ partnership, endpoint, ledger: ledger.ledger, log: pino({ level: 'silent' }) });
}

let fileNo = 0;
async function payloadFile(data = PAYLOAD): Promise<string> {
  const f = path.join(dir, `OUT_${++fileNo}.dat`);
  await writeFile(f, data);
  return f;
}

async function pushOk(over: Partial<As2Endpoint>, data = PAYLOAD): Promise<Seen> {
  behaviour = {};
  const f = await payloadFile(data);
  const r = await client(over).push(f, path.basename(f));
  assert.equal(r.bytes, data.length);
  const s = seen.at(-1)!;
  assert.deepEqual(s.payload, data, 'payload byte-identical at the partner');
  assert.equal(s.fileName, path.basename(f));
  return s;
}

describe('AS2 client against an openssl partner', () => {
  const ciphers: Array<[As2Endpoint['encrypt'], string]> = [
    ['aes128-cbc', 'aes-128-cbc'],
    ['aes192-cbc', 'aes-192-cbc'],
    ['aes256-cbc', 'aes-256-cbc'],
    ['aes128-gcm', 'aes-128-gcm'],
    ['aes256-gcm', 'aes-256-gcm'],
    ['des-ede3-cbc', 'des-ede3-cbc'],
  ];
  for (const [cipher, opensslName] of ciphers) {
    for (const keyTransport of ['rsa-pkcs1', 'rsa-oaep-sha256'] as const) {
      test(`sign sha256 + ${cipher} with ${keyTransport}: openssl decrypts, verifies, MIC matches`, async () => {
        const s = await pushOk({ encrypt: cipher, keyTransport });
        assert.equal(s.layers[0], `encrypted:${opensslName}:${keyTransport === 'rsa-pkcs1' ? 'rsaEncryption' : 'rsaesOaep'}`);
        assert.equal(s.layers[1], 'signed:sha256');
        assert.equal(s.headers['as2-version'], '1.2');
        assert.equal(s.headers['as2-from'], 'TSUNAGI');
        assert.equal(s.headers['as2-to'], '"PARTNER AS2"');
        assert.match(String(s.headers['message-id']), /^<[^<>@\s]+@[^<>@\s]+>$/);
        assert.ok(String(s.headers['message-id']).length <= 255);
        assert.equal(s.headers['mime-version'], '1.0');
        assert.equal(s.headers['disposition-notification-options'], 'signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, sha-256');
      });
    }
  }

  for (const sign of ['sha1', 'sha256', 'sha384', 'sha512'] as const) {
    test(`signing with ${sign} (unencrypted)`, async () => {
      const s = await pushOk({ sign, encrypt: 'none' });
      assert.deepEqual(s.layers, [`signed:${sign}`]);
    });
  }

  test('compression before and after signing (structure printed by openssl, inflated with zlib)', async () => {
    assert.deepEqual((await pushOk({ compress: 'before-signing' })).layers, ['encrypted:aes-256-cbc:rsaEncryption', 'signed:sha256', 'compressed']);
    assert.deepEqual((await pushOk({ compress: 'after-signing' })).layers, ['encrypted:aes-256-cbc:rsaEncryption', 'compressed', 'signed:sha256']);
  });

  test('base64 inner parts, chunked framing, unsigned and unencrypted, a 1 MB payload', async () => {
    const s = await pushOk({ transferEncoding: 'base64', framing: 'chunked' });
    assert.equal(s.payloadHeaders.get('content-transfer-encoding'), 'base64');
    assert.equal(s.headers['transfer-encoding'], 'chunked');
    const plain = await pushOk({ sign: 'none', encrypt: 'none', signedMdn: false });
    assert.deepEqual(plain.layers, []);
    const big = Buffer.alloc(1 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
    await pushOk({}, big);
  });

  test('an MDN naming another MIC algorithm (sha1, SHA-512), small and large (lazily recomputed) payloads', async () => {
    for (const [size, micAlg] of [[1000, 'sha1'], [17 << 20, 'sha512']] as const) {
      const data = Buffer.alloc(size, 0x33);
      const f = await payloadFile(data);
      behaviour = { micAlg };
      await client({ encrypt: 'none' }).push(f, path.basename(f));
      assert.equal(seen.at(-1)!.payload.length, size);
    }
    behaviour = { micAlg: 'sha512', micOverride: createHash('sha512').update('x').digest('base64') };
    const f = await payloadFile(Buffer.alloc(1000, 0x34));
    await assert.rejects(client({ encrypt: 'none' }).push(f, path.basename(f)), /MIC mismatch \(SHA-512\)/);
  });

  test('no MDN asked: sent on HTTP 2xx', async () => {
    const s = await pushOk({ mdn: 'none' });
    assert.equal(s.headers['disposition-notification-to'], undefined);
  });

  test('a wrong MIC, a failed disposition, an unsigned or foreign-signed MDN, an HTTP error: failed attempts', async () => {
    const cases: Array<[typeof behaviour, RegExp]> = [
      [{ micOverride: createHash('sha256').update('other').digest('base64') }, /MIC mismatch/],
      [{ disposition: 'processed/Error: decryption-failed' }, /decryption-failed/],
      [{ disposition: 'failed/Failure: unknown-trading-partner' }, /unknown-trading-partner/],
      [{ unsigned: true }, /not signed/],
      [{ signer: stranger }, /signature does not verify/],
      [{ status: 500 }, /HTTP 500/],
    ];
    for (const [b, reason] of cases) {
      const f = await payloadFile();
      behaviour = b;
      await assert.rejects(client({}).push(f, path.basename(f)), reason);
    }
    behaviour = { disposition: 'processed/Warning: duplicate-document' };
    const f = await payloadFile();
    await client({}).push(f, path.basename(f));
  });

  test('the MIC digests of every algorithm and the state are kept in the ledger; a retry keeps the Message-ID', async () => {
    const f = await payloadFile(Buffer.from('retry me\n'));
    const stopped = http.createServer((req) => req.socket.destroy());
    await new Promise<void>((r) => stopped.listen(0, '127.0.0.1', () => r()));
    const deadPort = (stopped.address() as { port: number }).port;
    const c1 = client({ url: `http://127.0.0.1:${deadPort}/as2` });
    await assert.rejects(c1.push(f, 'RETRY.dat'));
    stopped.close();
    const rows1 = await ledger.ledger.db('as2_sent').where({ remote_name: 'RETRY.dat' });
    assert.equal(rows1.length, 1);
    assert.equal(rows1[0].state, 'sending');
    assert.deepEqual(Object.keys(JSON.parse(rows1[0].mics)).sort(), ['sha1', 'sha256', 'sha384', 'sha512']);
    behaviour = {};
    await client({}).push(f, 'RETRY.dat');
    assert.equal(seen.at(-1)!.headers['message-id'], rows1[0].message_id);
    const rows2 = await ledger.ledger.db('as2_sent').where({ remote_name: 'RETRY.dat' });
    assert.equal(rows2.length, 1);
    assert.equal(rows2[0].state, 'processed');
  });
});
