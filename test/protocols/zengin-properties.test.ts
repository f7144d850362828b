// Property-based tests (fast-check, fixed seed: test/helpers/property.ts) of the 全銀 decoders and
// the link's framing, over bytes a partner could send: every decoder either decodes or throws a
// ProtocolError (with the 処理結果 to answer), encode then decode is the identity, and the link never
// hands over more than maxText nor waits for bytes that cannot come.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import fc from 'fast-check';
import { EbcdicError, decodeEbcdic, encodeEbcdic } from '../../protocols/zengin/ebcdic.ts';
import { ConnectionClosedError, InactivityTimeoutError, ZenginLink } from '../../protocols/zengin/link.ts';
import {
  CONTROL_LENGTH, FileKind, ProtocolError, SessionKind, decodeFileControl, decodeSessionControl, decodeTtc, encodeDataHeader, encodeFileControl,
  encodeSessionControl, encodeTtc, type FileControl, type SessionControl,
} from '../../protocols/zengin/messages.ts';
import { checkAsyncProperty, checkProperty, mutationsOf, parsesOrRefuses } from '../helpers/property.ts';

const EBCDIC_TEXT = [...'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz .<(+&$*);-/,%_>?:#@\'="'];
const ebcdicText = (max: number) => fc.array(fc.constantFrom(...EBCDIC_TEXT), { maxLength: max }).map((a) => a.join(''));
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));

const sessionArb: fc.Arbitrary<SessionControl> = fc.record({
  kind: fc.constantFrom(...Object.values(SessionKind)),
  result: fc.integer({ min: 0, max: 255 }),
  receiverCode: bytes(7),
  senderCode: bytes(7),
  timestamp: bytes(6),
  password: bytes(6),
  applicationId: fc.constantFrom(...EBCDIC_TEXT),
  mode: fc.constantFrom('0' as const, '1' as const),
});

const fileArb: fc.Arbitrary<FileControl> = fc.record({
  kind: fc.constantFrom(...Object.values(FileKind)),
  result: fc.integer({ min: 0, max: 255 }),
  fileName: ebcdicText(12).map((s) => s.padEnd(12, ' ')),
  accessKey: ebcdicText(6).map((s) => s.padEnd(6, ' ')),
  textCount: fc.integer({ min: 0, max: 0xffff }),
  recordCount: fc.integer({ min: 0, max: 0xffffff }),
  recordLength: fc.integer({ min: 0, max: 0xffff }),
  restartFrom: fc.integer({ min: 0, max: 0xffff }),
  restartTo: fc.integer({ min: 0, max: 0xffff }),
  auxInfo: ebcdicText(17).map((s) => s.padEnd(17, ' ')),
});

test('EBCDIC: text of the mapped set round-trips; any bytes decode or are refused with EbcdicError', () => {
  checkProperty(300, [ebcdicText(40)], (text) => {
    assert.equal(decodeEbcdic(encodeEbcdic(text)), text);
  });
  checkProperty(300, [fc.uint8Array({ maxLength: 40 })], (raw) => {
    const text = parsesOrRefuses(() => decodeEbcdic(raw), [EbcdicError]);
    if (text !== undefined) assert.deepEqual([...encodeEbcdic(text)], [...raw]);
  });
});

test('TTC header: encode then decode is the identity; 5 or more random bytes decode or are a ProtocolError', () => {
  const ttc = fc.record({ form: fc.constantFrom('pc' as const, 'host' as const), isData: fc.boolean(), seq: fc.integer({ min: 0, max: 0xffff }), length: fc.integer({ min: 0, max: 0xffff }) });
  checkProperty(300, [ttc], (h) => assert.deepEqual(decodeTtc(encodeTtc(h)), { ...h }));
  checkProperty(300, [fc.uint8Array({ maxLength: 12 })], (raw) => {
    parsesOrRefuses(() => decodeTtc(Buffer.from(raw)), [ProtocolError]);
  });
});

test('session control: encode then decode is the identity', () => {
  checkProperty(300, [sessionArb, fc.constantFrom('pc' as const, 'host' as const)], (m, form) => {
    const wire = encodeSessionControl(m, form);
    assert.equal(wire.length, CONTROL_LENGTH);
    assert.deepEqual(decodeSessionControl(wire), { ...m });
  });
});

test('file control: encode then decode is the identity', () => {
  checkProperty(300, [fileArb], (m) => {
    assert.deepEqual(decodeFileControl(encodeFileControl(m)), { ...m });
  });
});

test('control decoders: mutated, cut and random messages decode or are a ProtocolError, never another error', () => {
  const session = encodeSessionControl(fc.sample(sessionArb, { seed: 1, numRuns: 1 })[0]!);
  const file = encodeFileControl(fc.sample(fileArb, { seed: 1, numRuns: 1 })[0]!);
  checkProperty(500, [fc.oneof(mutationsOf(session), mutationsOf(file))], (raw) => {
    parsesOrRefuses(() => decodeSessionControl(raw), [ProtocolError]);
    parsesOrRefuses(() => decodeFileControl(raw), [ProtocolError]);
  });
});

/** A socket stand-in that delivers `chunks` and then ends; the link reads it as it reads a real one. */
function fakeSocket(chunks: Buffer[]): Socket {
  const s = new EventEmitter() as EventEmitter & { paused: boolean };
  s.paused = false;
  Object.assign(s, {
    pause: () => { s.paused = true; },
    resume: () => { s.paused = false; },
    isPaused: () => s.paused,
    write: () => true,
    cork: () => {},
    uncork: () => {},
  });
  setImmediate(() => {
    for (const c of chunks) s.emit('data', c);
    s.emit('end');
  });
  return s as unknown as Socket;
}

/** A byte stream of whole and broken frames, bare or wrapped, cut into random chunks. */
const streamArb = fc
  .tuple(
    fc.array(
      fc.oneof(
        fc.integer({ min: 6, max: 600 }).map((n) => Buffer.concat([encodeDataHeader(1, n - 5), Buffer.alloc(n - 5, 0x41)])),
        fc.constant(encodeSessionControl(fc.sample(sessionArb, { seed: 2, numRuns: 1 })[0]!)),
        fc.uint8Array({ minLength: 1, maxLength: 80 }).map((a) => Buffer.from(a)),
      ),
      { minLength: 1, maxLength: 6 },
    ),
    fc.boolean(),
    fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 8 }),
  )
  .map(([frames, wrap, cuts]) => {
    const all = Buffer.concat(
      frames.map((f) => {
        if (!wrap) return f;
        const w = Buffer.alloc(8);
        w.writeUInt16BE(Math.min(0xffff, 8 + f.length), 0);
        w[2] = 0x10;
        return Buffer.concat([w, f]);
      }),
    );
    const chunks: Buffer[] = [];
    for (let at = 0, i = 0; at < all.length; i++) {
      const n = cuts[i % cuts.length]!;
      chunks.push(all.subarray(at, at + n));
      at += n;
    }
    return chunks;
  });

test('link framing: any byte stream yields whole messages within maxText, then a ProtocolError or the end of the connection', async () => {
  const maxText = 512;
  await checkAsyncProperty(150, [streamArb], async (chunks) => {
    const link = new ZenginLink(fakeSocket(chunks), { wrapper: undefined, ackEvery: 0, maxText, timeoutMs: 2000 });
    const total = chunks.reduce((n, c) => n + c.length, 0);
    let handed = 0;
    for (let i = 0; ; i++) {
      assert.ok(i <= total, 'more frames than bytes: the link loops');
      let frame;
      try {
        frame = await link.nextFrame();
      } catch (err) {
        if (err instanceof InactivityTimeoutError) assert.fail('the link waited for bytes after the connection ended');
        if (err instanceof ProtocolError || err instanceof ConnectionClosedError) return;
        throw err;
      }
      if (frame.ack) continue;
      assert.ok(frame.message.length <= Math.max(maxText, CONTROL_LENGTH), `a message of ${frame.message.length} bytes passed maxText ${maxText}`);
      handed += frame.message.length;
      assert.ok(handed <= total);
    }
  });
});
