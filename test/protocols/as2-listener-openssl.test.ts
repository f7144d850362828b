// Messages built with `openssl cms` (the independent peer) sent to our AS2 listener: every
// algorithm of the spec, compression before and after signing, MIC against openssl's
// messageDigest, signed MDNs verified by openssl, and the refusals of item 4.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, createHash, publicEncrypt, createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compress } from '../../protocols/as2/cms.ts';
import { parseNotificationOptions, chooseMic } from '../../protocols/as2/mdn.ts';
import { decode } from '../../protocols/as2/der.ts';
import {
  account,
  as2Headers,
  makeKey,
  openssl,
  opensslMessageDigest,
  opensslVerifyMdn,
  PAYLOAD,
  payloadEntity,
  post,
  readInbound,
  splitSmime,
  startListener,
  type KeyFiles,
  type ListenerStand,
} from './as2-helpers.ts';

let dir: string;
let ours: KeyFiles;
let oursNext: KeyFiles;
let partner: KeyFiles;
let partnerNext: KeyFiles;
let stranger: KeyFiles;
let stand: ListenerStand;
let n = 0;
const nextId = () => `<t${++n}.${Date.now()}@partner.example>`;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-as2-ossl-'));
  [ours, oursNext, partner, partnerNext, stranger] = await Promise.all(['ours', 'ours-next', 'partner', 'partner-next', 'stranger'].map((k) => makeKey(dir, k)));
  stand = await startListener([
    {
      partnerId: 'cc-as2',
      account: account({ keys: [{ cert: { file: ours.cert }, key: { file: ours.key } }, { cert: { file: oursNext.cert }, key: { file: oursNext.key } }], partnerCertificates: [{ file: partner.cert }, { file: partnerNext.cert }] }),
    },
    {
      partnerId: 'lax',
      account: account({ id: 'LAX', requireSigned: false, keys: [{ cert: { file: ours.cert }, key: { file: ours.key } }], partnerCertificates: [{ file: partner.cert }] }),
    },
    {
      partnerId: 'strict',
      account: account({ id: 'STRICT', requireEncrypted: true, keys: [{ cert: { file: ours.cert }, key: { file: ours.key } }], partnerCertificates: [{ file: partner.cert }] }),
    },
  ]);
});
after(async () => stand?.stop());

async function file(name: string, data: Buffer): Promise<string> {
  const f = path.join(dir, name);
  await writeFile(f, data);
  return f;
}

interface Built {
  headers: Record<string, string>;
  body: Buffer;
  /** The signature's messageDigest per openssl (sha of what was signed), if signed. */
  messageDigest?: string;
}

/** Builds with openssl: optional compression (zlib, ours: Debian's openssl has none), signing, encryption. */
async function build(o: { sign?: string; signer?: KeyFiles; encrypt?: string; keyopt?: string[]; recip?: KeyFiles; compress?: 'before' | 'after'; payload?: Buffer; name?: string }): Promise<Built> {
  const id = ++n;
  let entity = payloadEntity(o.payload ?? PAYLOAD, o.name ?? `URIAGE_${id}.dat`);
  const compressed = (e: Buffer) =>
    Buffer.concat([Buffer.from('Content-Type: application/pkcs7-mime; smime-type=compressed-data; name=smime.p7z\r\nContent-Transfer-Encoding: binary\r\n\r\n'), compress([e])]);
  if (o.compress === 'before') entity = compressed(entity);
  let messageDigest: string | undefined;
  if (o.sign) {
    const signer = o.signer ?? partner;
    const signed = await openssl(['cms', '-sign', '-binary', '-crlfeol', '-md', o.sign, '-signer', signer.cert, '-inkey', signer.key, '-in', await file(`e${id}`, entity)]);
    await file(`s${id}.smime`, signed);
    const printed = (await openssl(['cms', '-cmsout', '-print', '-in', path.join(dir, `s${id}.smime`)])).toString('latin1');
    messageDigest = hexDigest(printed);
    entity = signed.subarray(signed.indexOf('Content-Type'));
    if (o.compress === 'after') entity = compressed(entity);
  }
  if (o.encrypt) {
    const der = await openssl(['cms', '-encrypt', '-binary', `-${o.encrypt}`, '-recip', (o.recip ?? ours).cert, ...(o.keyopt ?? []), '-outform', 'DER', '-in', await file(`p${id}`, entity)]);
    return { headers: { 'Content-Type': `application/pkcs7-mime; smime-type=${o.encrypt.endsWith('gcm') ? 'authEnveloped-data' : 'enveloped-data'}; name=smime.p7m`, 'Content-Transfer-Encoding': 'binary' }, body: der, messageDigest };
  }
  const s = splitSmime(entity);
  return { headers: s.headers, body: s.body, messageDigest };
}

function hexDigest(printed: string): string {
  const i = printed.indexOf('object: messageDigest');
  const block = printed.slice(i, Math.min(...[printed.indexOf('object:', i + 10), printed.indexOf('signatureAlgorithm', i)].filter((x) => x > 0)));
  const hex = [...block.matchAll(/^\s*[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -]){1,16})/gm)].map((x) => x[1]!.replace(/[ -]/g, '')).join('');
  return Buffer.from(hex, 'hex').toString('base64');
}

function reportOf(verified: string): { disposition: string; mic?: string; micAlg?: string; original?: string } {
  const d = /Disposition:\s*([^\r\n]+)/i.exec(verified)?.[1];
  const mic = /Received-Content-MIC:\s*([^,\r\n]+),\s*([^\r\n]+)/i.exec(verified);
  return { disposition: d!.trim(), mic: mic?.[1]?.trim(), micAlg: mic?.[2]?.trim(), original: /Original-Message-ID:\s*([^\r\n]+)/i.exec(verified)?.[1]?.trim() };
}

async function send(b: Built, o: { from?: string; to?: string; id?: string; extra?: Record<string, string> } = {}) {
  const id = o.id ?? nextId();
  const a = await post(stand.port, '/as2', { ...as2Headers(o.from ?? 'PARTNER AS2', o.to ?? 'TSUNAGI', id, o.extra), ...b.headers }, b.body);
  return { a, id };
}

async function sendAndVerify(b: Built, o: { from?: string; extra?: Record<string, string>; signer?: KeyFiles } = {}) {
  const { a, id } = await send(b, o);
  assert.equal(a.status, 200, a.body.toString());
  const verified = await opensslVerifyMdn(dir, a, (o.signer ?? ours).cert);
  const r = reportOf(verified);
  assert.equal(r.original, id);
  return { ...r, id, a };
}

/** The landed file (landing follows the MDN write by a moment), or undefined after a short wait. */
async function landedWith(name: string, waitMs = 1500): Promise<Buffer | undefined> {
  const until = Date.now() + waitMs;
  for (;;) {
    const got = (await readInbound(stand.spool, 'cc-as2')).get(name);
    if (got || Date.now() > until) return got;
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('AS2 listener against openssl cms', () => {
  const ciphers = ['aes-128-cbc', 'aes-192-cbc', 'aes-256-cbc', 'aes-128-gcm', 'aes-256-gcm', 'des-ede3-cbc'];
  for (const cipher of ciphers) {
    for (const transport of ['pkcs1', 'oaep'] as const) {
      test(`signed (sha256) + encrypted ${cipher} ${transport}: payload byte-identical, MIC = openssl messageDigest`, async () => {
        const name = `F_${cipher}_${transport}.dat`;
        const b = await build({ sign: 'sha256', encrypt: cipher, keyopt: transport === 'oaep' ? ['-keyopt', 'rsa_padding_mode:oaep', '-keyopt', 'rsa_oaep_md:sha256'] : [], name });
        const r = await sendAndVerify(b);
        assert.match(r.disposition, /automatic-action\/MDN-sent-automatically;\s*processed$/);
        assert.equal(r.micAlg, 'sha-256');
        assert.equal(r.mic, b.messageDigest);
        assert.deepEqual(await landedWith(name), PAYLOAD);
      });
    }
  }

  for (const md of ['sha1', 'sha256', 'sha384', 'sha512']) {
    test(`signed with ${md}, MIC asked in ${md}`, async () => {
      const name = `D_${md}.dat`;
      const b = await build({ sign: md, name });
      const token = { sha1: 'sha1', sha256: 'SHA256', sha384: 'sha-384', sha512: 'sha-512' }[md]!;
      const r = await sendAndVerify(b, { extra: { 'Disposition-Notification-Options': `signed-receipt-protocol=optional,pkcs7-signature;signed-receipt-micalg=optional,${token}` } });
      assert.equal(r.micAlg, token);
      assert.equal(r.mic, b.messageDigest);
      assert.deepEqual(await landedWith(name), PAYLOAD);
    });
  }

  test('compression before signing and after signing, inside encryption', async () => {
    for (const where of ['before', 'after'] as const) {
      const name = `C_${where}.dat`;
      const b = await build({ sign: 'sha256', encrypt: 'aes-256-cbc', compress: where, name });
      const r = await sendAndVerify(b);
      assert.match(r.disposition, /processed$/);
      assert.equal(r.mic, b.messageDigest, where);
      assert.deepEqual(await landedWith(name), PAYLOAD);
    }
  });

  test('encrypted but unsigned, and plain: MIC over the decrypted entity / the content', async () => {
    const entity = payloadEntity(PAYLOAD, 'LAX_ENC.dat');
    const b = await build({ encrypt: 'aes-256-cbc', name: 'LAX_ENC.dat' });
    const r = await sendAndVerify(b, { from: 'LAX' });
    assert.match(r.disposition, /processed$/);
    assert.equal(r.mic, createHash('sha256').update(entity).digest('base64'));
    const plain = await sendAndVerify({ headers: { 'Content-Type': 'application/octet-stream' }, body: PAYLOAD }, { from: 'LAX' });
    assert.equal(plain.mic, createHash('sha256').update(PAYLOAD).digest('base64'));
    await new Promise((r) => setTimeout(r, 300));
    const inbound = await readInbound(stand.spool, 'lax');
    assert.deepEqual(inbound.get('LAX_ENC.dat'), PAYLOAD);
    assert.equal([...inbound.values()].filter((v) => v.equals(PAYLOAD)).length, 2);
  });

  test('certificate rollover: signed by either partner certificate, encrypted to either of our keys', async () => {
    const b = await build({ sign: 'sha256', signer: partnerNext, encrypt: 'aes-256-cbc', recip: oursNext, name: 'ROLL.dat' });
    const r = await sendAndVerify(b);
    assert.match(r.disposition, /processed$/);
    assert.deepEqual(await landedWith('ROLL.dat'), PAYLOAD);
  });

  test('wrong key, bad padding and bad ciphertext give the same decryption-failed', async () => {
    const wrongKey = await build({ sign: 'sha256', encrypt: 'aes-256-cbc', recip: stranger, name: 'X1.dat' });
    const good = await build({ sign: 'sha256', encrypt: 'aes-256-cbc', name: 'X2.dat' });
    // Bad padding: replace the encrypted key with an RSA block whose padding is not PKCS#1 v1.5.
    const badPadding = Buffer.from(good.body);
    const ek = findEncryptedKey(badPadding);
    const block = Buffer.alloc(256, 0x41);
    block[0] = 0;
    block[1] = 1; // block type 1: not an encryption block
    publicEncrypt({ key: createPublicKey(await readFile(ours.cert)), padding: constants.RSA_NO_PADDING }, block).copy(badPadding, ek);
    const badCipher = Buffer.from(good.body);
    for (let i = badCipher.length - 40; i < badCipher.length - 8; i++) badCipher[i]! ^= 0x5a;
    const answers = [];
    for (const body of [wrongKey.body, badPadding, badCipher]) {
      const r = await sendAndVerify({ headers: good.headers, body });
      const text = /Content-Type: text\/plain[\s\S]*?\r\n\r\n([\s\S]*?)\r\n--/.exec(r.a.body.toString('latin1'))?.[1]?.replace(/<[^>]+>/, '<id>');
      answers.push({ status: r.a.status, disposition: r.disposition, mic: r.mic, text });
    }
    assert.equal(answers[0]!.disposition, 'automatic-action/MDN-sent-automatically; processed/Error: decryption-failed');
    assert.deepEqual(answers[1], answers[0]);
    assert.deepEqual(answers[2], answers[0]);
    assert.equal(await landedWith('X1.dat', 300), undefined);
  });

  test('unsigned where signing is required: insufficient-message-security; encryption required: the same', async () => {
    const r = await sendAndVerify(await build({ encrypt: 'aes-256-cbc', name: 'UNSIGNED.dat' }));
    assert.match(r.disposition, /processed\/Error: insufficient-message-security$/);
    assert.equal(await landedWith('UNSIGNED.dat', 300), undefined);
    const s = await sendAndVerify(await build({ sign: 'sha256', name: 'NOTENC.dat' }), { from: 'STRICT' });
    assert.match(s.disposition, /insufficient-message-security$/);
  });

  test('tampered body: integrity-check-failed; a signer we do not trust: authentication-failed', async () => {
    const b = await build({ sign: 'sha256', name: 'TAMPER.dat' });
    const i = b.body.indexOf('record one');
    const tampered = Buffer.from(b.body);
    tampered[i] = 0x52;
    const r = await sendAndVerify({ headers: b.headers, body: tampered });
    assert.match(r.disposition, /processed\/Error: integrity-check-failed$/);
    const s = await sendAndVerify(await build({ sign: 'sha256', signer: stranger, name: 'STRANGER.dat' }));
    assert.match(s.disposition, /processed\/Error: authentication-failed$/);
    assert.equal(await landedWith('TAMPER.dat', 300), undefined);
    assert.equal(await landedWith('STRANGER.dat', 300), undefined);
  });

  test('the same Message-ID again the moment our MDN arrived, while the first is still landing: duplicate-document, landed once', async () => {
    const b = await build({ sign: 'sha256', name: 'FASTDUP.dat' });
    const id = nextId();
    process.env.TSUNAGI_AS2_PAUSE_BEFORE_LANDING_MS = '600';
    try {
      const first = await send(b, { id });
      const second = await send(b, { id });
      assert.match(reportOf(await opensslVerifyMdn(dir, first.a, ours.cert)).disposition, /processed$/);
      assert.match(reportOf(await opensslVerifyMdn(dir, second.a, ours.cert)).disposition, /processed\/Warning: duplicate-document$/);
    } finally {
      delete process.env.TSUNAGI_AS2_PAUSE_BEFORE_LANDING_MS;
    }
    assert.ok(await landedWith('FASTDUP.dat'));
    await new Promise((r) => setTimeout(r, 800));
    assert.equal([...(await readInbound(stand.spool, 'cc-as2')).keys()].filter((n) => n.includes('FASTDUP')).length, 1, 'landed once');
  });

  test('duplicate Message-ID: answered duplicate-document, landed once', async () => {
    const b = await build({ sign: 'sha256', encrypt: 'aes-256-cbc', name: 'DUP.dat' });
    const id = nextId();
    const first = await send(b, { id });
    const second = await send(b, { id });
    assert.match(reportOf(await opensslVerifyMdn(dir, first.a, ours.cert)).disposition, /processed$/);
    assert.match(reportOf(await opensslVerifyMdn(dir, second.a, ours.cert)).disposition, /processed\/Warning: duplicate-document$/);
    assert.ok(await landedWith('DUP.dat'));
    await new Promise((r) => setTimeout(r, 300));
    const inbound = await readInbound(stand.spool, 'cc-as2');
    assert.equal([...inbound.keys()].filter((k) => k.startsWith('DUP')).length, 1);
  });

  test('unknown trading partner: HTTP 403 with failed/Failure: unknown-trading-partner', async () => {
    const b = await build({ sign: 'sha256', name: 'WHO.dat' });
    const { a } = await send(b, { from: 'NOBODY' });
    assert.equal(a.status, 403);
    assert.match(a.body.toString('latin1'), /Disposition: automatic-action\/MDN-sent-automatically; failed\/Failure: unknown-trading-partner/);
    const { a: wrongTo } = await send(b, { to: 'SOMEONE ELSE' });
    assert.equal(wrongTo.status, 403);
  });

  test('unsupported MIC algorithm required: failed/Failure: unsupported MIC-algorithms', async () => {
    const r = await sendAndVerify(await build({ sign: 'sha256', name: 'MD5.dat' }), {
      extra: { 'Disposition-Notification-Options': 'signed-receipt-protocol=required, pkcs7-signature; signed-receipt-micalg=required, md5' },
    });
    assert.match(r.disposition, /failed\/Failure: unsupported MIC-algorithms$/);
  });

  test('an async MDN for an unknown Message-ID is refused', async () => {
    const report = `--b\r\nContent-Type: message/disposition-notification\r\n\r\nOriginal-Message-ID: <never-sent@x>\r\nDisposition: automatic-action/MDN-sent-automatically; processed\r\n\r\n--b--\r\n`;
    const a = await post(stand.port, '/as2/mdn', { 'Content-Type': 'multipart/report; report-type=disposition-notification; boundary="b"', 'AS2-From': 'PARTNER AS2', 'AS2-To': 'TSUNAGI' }, Buffer.from(report));
    assert.equal(a.status, 400);
    assert.match(a.body.toString(), /unknown Original-Message-ID/);
  });

  test('malformed messages get a clear answer and the listener keeps serving', async () => {
    const garbage = await send({ headers: { 'Content-Type': 'application/pkcs7-mime; smime-type=enveloped-data' }, body: Buffer.from('not der at all') });
    assert.equal(garbage.a.status, 200);
    assert.match(garbage.a.body.toString('latin1'), /decryption-failed/);
    const noHeaders = await post(stand.port, '/as2', { 'Content-Type': 'text/plain' }, Buffer.from('x'));
    assert.equal(noHeaders.status, 400);
    const badMultipart = await send({ headers: { 'Content-Type': 'multipart/signed; boundary="zz"' }, body: Buffer.from('--zz\r\nbroken') });
    assert.match(badMultipart.a.body.toString('latin1'), /integrity-check-failed/);
    const r = await sendAndVerify(await build({ sign: 'sha256', name: 'AFTER_GARBAGE.dat' }));
    assert.match(r.disposition, /processed$/);
  });
});

describe('Disposition-Notification-Options, leniently', () => {
  test('real-world spellings', () => {
    const cases: Array<[string, boolean, string]> = [
      ['signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, sha-256', true, 'sha-256'],
      ['signed-receipt-protocol=optional,pkcs7-signature;signed-receipt-micalg=optional,sha1', true, 'sha1'],
      ['Signed-Receipt-Protocol=Required, PKCS7-Signature; Signed-Receipt-Micalg=Required, SHA256, sha1', true, 'SHA256'],
      ['signed-receipt-protocol = optional , pkcs7-signature ; signed-receipt-micalg = optional , md5 , sha-512', true, 'sha-512'],
      ['signed-receipt-micalg=optional, sha-384; signed-receipt-protocol=optional, pkcs7-signature', true, 'sha-384'],
      ['signed-receipt-protocol="optional", "pkcs7-signature"; signed-receipt-micalg="optional", "sha256"', true, 'sha256'],
    ];
    for (const [value, signed, token] of cases) {
      const o = parseNotificationOptions(value);
      assert.equal(o.signedReceipt, signed, value);
      const c = chooseMic(o);
      assert.ok(!('unsupported' in c), value);
      assert.equal((c as { token: string }).token, token, value);
    }
    assert.deepEqual(chooseMic(parseNotificationOptions('signed-receipt-protocol=required,pkcs7-signature; signed-receipt-micalg=required,md5')), { unsupported: true });
  });
});

/** Offset of the encryptedKey OCTET STRING's content in an openssl EnvelopedData. */
function findEncryptedKey(der: Buffer): number {
  const ci = decode(der);
  const env = ci.children[1]!.children[0]!;
  const ktri = env.children[1]!.children[0]!;
  const ek = ktri.children[3]!;
  return ek.content.byteOffset - der.byteOffset;
}
