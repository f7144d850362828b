// Property-based tests (fast-check, fixed seed: test/helpers/property.ts) of the AS2 parsers over
// bytes a partner sends: MIME entities, parameters, multipart bodies, transfer encodings, BER/DER,
// the layer-by-layer unwrap and MDNs. Each either parses or refuses with its own error (MimeError,
// DerError, As2ProcessingError), writers and readers agree, and nothing grows past its input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DerError, decode, integer, octetString, oid, oidOf, seq, setOf, tlv, intOf, type Asn1 } from '../../protocols/as2/der.ts';
import { MimeError, decodedBody, headerBlock, parseEntity, parseParams, quoteIfNeeded, splitMultipart, unquote } from '../../protocols/as2/mime.ts';
import { As2ProcessingError, unwrap } from '../../protocols/as2/unwrap.ts';
import { parseReport } from '../../protocols/as2/mdn.ts';
import { checkProperty, mutationsOf, parsesOrRefuses } from '../helpers/property.ts';

const headerText = fc.stringMatching(/^[\x21-\x7e][\x20-\x7e]{0,30}[\x21-\x7e]$/);
const tokenName = fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/);

test('MIME: an entity written from headers and a body parses back to the same headers and the exact body', () => {
  checkProperty(300, [fc.uniqueArray(fc.tuple(tokenName, headerText), { selector: ([k]) => k, maxLength: 6 }), fc.uint8Array({ maxLength: 300 })], (headers, body) => {
    const raw = Buffer.concat([headerBlock(headers.map(([k, v]) => [k, v])), Buffer.from(body)]);
    const e = parseEntity(raw);
    assert.deepEqual([...e.headers], headers.map(([k, v]) => [k, v.trim()]));
    assert.deepEqual([...e.body], [...body]);
  });
});

test('MIME: any bytes parse as an entity whose body is a part of them, or are a MimeError', () => {
  const sample = Buffer.from('Content-Type: application/edi-x12\r\nContent-Disposition: attachment; filename="T31.dat"\r\n\r\nbody bytes');
  checkProperty(500, [fc.oneof(mutationsOf(sample), fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)))], (raw) => {
    const e = parsesOrRefuses(() => parseEntity(raw), [MimeError]);
    if (e) assert.ok(e.body.length <= raw.length && e.headers.size <= raw.length);
  });
});

test('MIME parameters: a value quoted when needed reads back as itself', () => {
  const value = fc.stringMatching(/^[\x20-\x7e]{1,30}$/).filter((v) => v.trim() === v);
  checkProperty(500, [tokenName, value], (name, v) => {
    const ct = parseParams(`application/pkcs7-mime; ${name}=${quoteIfNeeded(v)}; smime-type=enveloped-data`);
    assert.equal(ct.params.get(name), v);
    assert.equal(ct.params.get('smime-type'), 'enveloped-data');
    assert.equal(unquote(quoteIfNeeded(v)), v);
  });
});

test('multipart: parts joined with a boundary split back into the exact parts; any body splits or is a MimeError', () => {
  const boundary = fc.stringMatching(/^[A-Za-z0-9'()+_,./:=?-]{1,40}$/);
  const part = fc.uint8Array({ maxLength: 120 }).map((a) => Buffer.from(a));
  checkProperty(300, [boundary, fc.array(part, { minLength: 1, maxLength: 5 })], (b, parts) => {
    // a part that holds the delimiter itself cannot be framed: the writer chooses boundaries that are not in the parts
    fc.pre(parts.every((p) => !p.includes(`--${b}`)));
    const body = Buffer.concat([...parts.flatMap((p) => [Buffer.from(`--${b}\r\n`), p, Buffer.from('\r\n')]), Buffer.from(`--${b}--\r\n`)]);
    assert.deepEqual(splitMultipart(body, b).map((p) => [...p]), parts.map((p) => [...p]));
  });
  const sample = Buffer.from('--XyZ\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZ\r\nContent-Type: application/pkcs7-signature\r\n\r\nMIAG\r\n--XyZ--\r\n');
  checkProperty(500, [mutationsOf(sample), fc.constantFrom('XyZ', 'X', '')], (body, b) => {
    const parts = parsesOrRefuses(() => splitMultipart(body, b), [MimeError]);
    if (parts) assert.ok(parts.reduce((n, p) => n + p.length, 0) <= body.length);
  });
});

test('transfer encodings: base64 and quoted-printable bodies decode to the bytes encoded, and any body decodes to no more than it holds', () => {
  const qp = (b: Buffer) => [...b].map((x) => (x >= 0x21 && x <= 0x7e && x !== 0x3d ? String.fromCharCode(x) : `=${x.toString(16).toUpperCase().padStart(2, '0')}`)).join('').replace(/.{70}/g, '$&=\r\n');
  checkProperty(300, [fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a))], (data) => {
    const b64 = Buffer.from(data.toString('base64').replace(/.{76}/g, '$&\r\n'));
    assert.deepEqual([...decodedBody({ headers: new Map([['content-transfer-encoding', 'base64']]), body: b64, raw: b64 })], [...data]);
    const q = Buffer.from(qp(data), 'latin1');
    assert.deepEqual([...decodedBody({ headers: new Map([['content-transfer-encoding', 'Quoted-Printable']]), body: q, raw: q })], [...data]);
  });
  checkProperty(300, [fc.constantFrom('base64', 'quoted-printable', 'binary', '7bit'), fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a))], (cte, body) => {
    assert.ok(decodedBody({ headers: new Map([['content-transfer-encoding', cte]]), body, raw: body }).length <= body.length);
  });
});

/** A random ASN.1 tree, written in DER. */
const derArb: fc.Arbitrary<Buffer> = fc.letrec<{ node: Buffer }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.uint8Array({ maxLength: 40 }).map((a) => octetString(Buffer.from(a))),
    fc.nat().map((n) => integer(n)),
    fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 39 }), fc.array(fc.nat({ max: 2 ** 31 }), { maxLength: 5 })).map(([a, b, rest]) => oid([a, b, ...rest].join('.'))),
    fc.array(tie('node'), { maxLength: 4 }).map((items) => seq(...items)),
    fc.array(tie('node'), { maxLength: 3 }).map((items) => setOf(...items)),
    fc.tuple(fc.integer({ min: 0, max: 3 }), tie('node')).map(([n, inner]) => tlv(0xa0 | n, inner)),
  ),
})).node;

function walk(n: Asn1, depth = 0): number {
  assert.ok(depth <= 64);
  assert.ok(n.content.length <= n.raw.length);
  return 1 + n.children.reduce((k, c) => k + walk(c, depth + 1), 0);
}

test('DER: what the writer writes the reader reads back byte for byte; OIDs and integers round-trip', () => {
  checkProperty(400, [derArb], (der) => {
    const node = decode(der);
    assert.deepEqual([...node.raw], [...der]);
    walk(node);
  });
  checkProperty(300, [fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 39 }), fc.array(fc.nat({ max: 2 ** 31 }), { maxLength: 6 }))], ([a, b, rest]) => {
    const dotted = [a, b, ...rest].join('.');
    assert.equal(oidOf(decode(oid(dotted))), dotted);
  });
  checkProperty(300, [fc.nat()], (n) => assert.equal(intOf(decode(integer(n))), n));
});

test('BER: mutated, cut and random encodings decode or are a DerError, never a crash or a deep recursion', () => {
  const sample = seq(oid('1.2.840.113549.1.7.2'), tlv(0xa0, seq(integer(1), setOf(seq(oid('2.16.840.1.101.3.4.2.1'))), seq(oid('1.2.840.113549.1.7.1'), tlv(0xa0, octetString(Buffer.from('content')))))));
  const indefinite = Buffer.from([0x30, 0x80, 0x24, 0x80, 0x04, 0x02, 0x41, 0x42, 0x00, 0x00, 0x00, 0x00]);
  const deep = Buffer.concat([Buffer.alloc(200).fill(0x30).map((_, i) => (i % 2 ? 0x80 : 0x30))]);
  checkProperty(600, [fc.oneof(mutationsOf(sample), mutationsOf(indefinite), mutationsOf(deep))], (raw) => {
    const node = parsesOrRefuses(() => decode(raw, true), [DerError]);
    if (node) walk(node);
  });
});

const keys = { keys: [], certs: [], maxDecompressedBytes: 1 << 16 };

test('unwrap: any entity a partner posts is unwrapped or refused with an As2ProcessingError (never an unexpected-processing-error from a crash)', () => {
  const types = fc.constantFrom(
    'application/pkcs7-mime; smime-type=enveloped-data',
    'application/pkcs7-mime; smime-type=compressed-data',
    'application/pkcs7-mime; smime-type=signed-data',
    'multipart/signed; boundary=XyZ; protocol="application/pkcs7-signature"',
    'application/edi-x12',
  );
  const signed = Buffer.from('--XyZ\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZ\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\n' + seq(oid('1.2.840.113549.1.7.2'), tlv(0xa0, seq(integer(1)))).toString('base64') + '\r\n--XyZ--\r\n');
  const cms = [
    seq(oid('1.2.840.113549.1.9.16.1.9'), tlv(0xa0, seq(integer(0), seq(oid('1.2.840.113549.1.9.16.3.8')), seq(oid('1.2.840.113549.1.7.1'), tlv(0xa0, octetString(Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]))))))),
    seq(oid('1.2.840.113549.1.7.3'), tlv(0xa0, seq(integer(0), setOf()))),
    seq(oid('1.2.840.113549.1.7.2'), tlv(0xa0, seq(integer(1), setOf(), seq(oid('1.2.840.113549.1.7.1'))))),
  ];
  const body = fc.oneof(mutationsOf(signed), ...cms.map((c) => mutationsOf(c)), ...cms.map((c) => mutationsOf(Buffer.from(c.toString('base64')))));
  checkProperty(400, [types, body, fc.constantFrom(undefined, 'base64', 'binary')], (type, raw, cte) => {
    const headers = new Map<string, string>([['content-type', type]]);
    if (cte) headers.set('content-transfer-encoding', cte);
    try {
      unwrap({ headers, body: raw, raw }, keys);
    } catch (err) {
      assert.ok(err instanceof As2ProcessingError, `${(err as Error).constructor.name}: ${(err as Error).message}`);
      assert.doesNotMatch(err.detail, /TypeError|RangeError|Cannot read|undefined/, `a crash inside unwrap: ${err.detail}`);
    }
  });
});

test('MDN: any multipart/report is read or refused with an Error that says why, never a crash', () => {
  const mdn = Buffer.from('--B\r\nContent-Type: text/plain\r\n\r\nok\r\n--B\r\nContent-Type: message/disposition-notification\r\n\r\nOriginal-Message-ID: <m@x>\r\nDisposition: automatic-action/MDN-sent-automatically; processed\r\nReceived-Content-MIC: abc=, sha-256\r\n\r\n--B--\r\n');
  checkProperty(400, [mutationsOf(mdn)], (body) => {
    try {
      parseReport({ headers: new Map([['content-type', 'multipart/report; report-type=disposition-notification; boundary=B']]), body, raw: body });
    } catch (err) {
      assert.ok(!(err instanceof TypeError) && !(err instanceof RangeError), `${(err as Error).constructor.name}: ${(err as Error).message}`);
    }
  });
});

test('counterexample: an escaped quote inside a quoted parameter does not end it (the parameters after it were swallowed)', () => {
  const ct = parseParams('application/pkcs7-mime; name="a\\";b"; smime-type=enveloped-data');
  assert.equal(ct.params.get('name'), 'a";b');
  assert.equal(ct.params.get('smime-type'), 'enveloped-data');
  assert.equal(parseParams(`attachment; filename=${quoteIfNeeded('"')}; size=3`).params.get('size'), '3');
});
