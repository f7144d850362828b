import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { decodeEbcdic, encodeEbcdic, ebcdicPairs } from '../../protocols/zengin/ebcdic.ts';
import {
  FileKind,
  ProtocolError,
  Result,
  SessionKind,
  bcdTimestamp,
  codeBytes,
  countsFor,
  decodeFileControl,
  decodeSessionControl,
  decodeTtc,
  encodeDataHeader,
  encodeFileControl,
  encodeSessionControl,
  passwordBytes,
} from '../../protocols/zengin/messages.ts';
import { zenginAccountSchema, zenginEndpointSchema, zenginListenerSchema } from '../../protocols/zengin/config.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// The spec's byte examples, verbatim.
const OPEN_REQUEST = hex(`
10 00 00 00 45 00 00 F0 F0 F0 F0 F0 00 01 F1 F0
F0 F0 F0 00 01 25 01 02 12 34 56 F0 F0 F0 F0 F0
F0 F0 F0 00 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00`);
const START_REQUEST = hex(`
10 00 00 00 45 10 00 E9 C7 D5 F0 F1 F0 F0 F0 F0
F0 F0 F0 F0 F0 F0 F0 F0 F0 00 01 00 00 04 F0 00
78 00 00 00 00 F0 40 40 40 40 40 40 40 40 40 40
40 40 40 40 40 40 40 00 00 00 00 00 00 00 00 00
00 00 00 00 00`);

test('開局要求 encodes to the spec example byte for byte, and decodes back', () => {
  const msg = encodeSessionControl({
    kind: SessionKind.openRequest,
    result: Result.ok,
    receiverCode: codeBytes('F0F0F0F0F00001'),
    senderCode: codeBytes('F1F0F0F0F00001'),
    timestamp: bcdTimestamp(new Date('2025-01-02T12:34:56+09:00')),
    password: passwordBytes('000000', 'ebcdic'),
    applicationId: '0',
    mode: '0',
  });
  assert.equal(msg.length, 69);
  assert.deepEqual(msg, OPEN_REQUEST);
  const back = decodeSessionControl(OPEN_REQUEST);
  assert.equal(back.kind, 0x00);
  assert.equal(back.receiverCode.toString('hex'), 'f0f0f0f0f00001');
  assert.equal(back.senderCode.toString('hex'), 'f1f0f0f0f00001');
  assert.equal(back.timestamp.toString('hex'), '250102123456');
  assert.deepEqual(back.password, passwordBytes('F0F0F0F0F0F0', 'hex'));
  assert.equal(back.mode, '0');
  assert.equal(back.applicationId, '0');
});

test('開始要求 encodes to the spec example byte for byte, and decodes back', () => {
  const fc = {
    kind: FileKind.startRequest,
    result: Result.ok,
    fileName: 'ZGN010000000',
    accessKey: '000000',
    textCount: 1,
    recordCount: 4,
    recordLength: 120,
    restartFrom: 0,
    restartTo: 0,
    auxInfo: '',
  };
  assert.deepEqual(encodeFileControl(fc), START_REQUEST);
  assert.deepEqual(decodeFileControl(START_REQUEST), { ...fc, auxInfo: ' '.repeat(17) });
});

test('the data message for 4 x 120 bytes starts 11 00 01 01 E5 and is 485 bytes', () => {
  const counts = countsFor(480, 120, 2048);
  assert.deepEqual(counts, { textCount: 1, recordCount: 4, perText: 17 });
  const header = encodeDataHeader(1, 480);
  assert.deepEqual(header, hex('11 00 01 01 E5'));
  assert.deepEqual(decodeTtc(header), { form: 'pc', isData: true, seq: 1, length: 485 });
  assert.deepEqual(decodeTtc(encodeDataHeader(7, 480, 'host')), { form: 'host', isData: true, seq: 7, length: 485 });
});

test('records per message follow floor((maxText - 5) / recordLength); limits are enforced', () => {
  assert.deepEqual(countsFor(200 * 1000, 200, 32000), { textCount: 7, recordCount: 1000, perText: 159 });
  assert.throws(() => countsFor(201, 200, 2048), /multiple/);
  assert.throws(() => countsFor(120 * 70000 * 16, 120, 2048), /limit/);
});

test('decoders refuse what does not fit, with the result code to answer', () => {
  const unknown = Buffer.from(OPEN_REQUEST);
  unknown[5] = 0x07;
  assert.throws(() => decodeSessionControl(unknown), (e: unknown) => e instanceof ProtocolError && e.result === Result.unknownKind);
  const badMode = Buffer.from(OPEN_REQUEST);
  badMode[34] = 0xf5;
  assert.throws(() => decodeSessionControl(badMode), (e: unknown) => e instanceof ProtocolError && e.result === Result.modeWrong);
  const badName = Buffer.from(START_REQUEST);
  badName[8] = 0x01;
  assert.throws(() => decodeFileControl(badName), (e: unknown) => e instanceof ProtocolError && e.result === Result.fileNameUnknown);
  const badKey = Buffer.from(START_REQUEST);
  badKey[20] = 0xff;
  assert.throws(() => decodeFileControl(badKey), (e: unknown) => e instanceof ProtocolError && e.result === Result.accessKeyWrong);
  assert.throws(() => decodeFileControl(START_REQUEST.subarray(0, 68)), ProtocolError);
  const dataFlag = Buffer.from(START_REQUEST);
  dataFlag[0] = 0x11;
  assert.throws(() => decodeFileControl(dataFlag), ProtocolError);
});

test('EBCDIC helper matches glibc iconv IBM037 for every mapped character and refuses the rest', () => {
  const pairs = ebcdicPairs();
  const bytes = Buffer.from(pairs.map(([, e]) => e));
  const viaIconv = execFileSync('iconv', ['-f', 'IBM037', '-t', 'UTF-8'], { input: bytes }).toString('utf8');
  assert.equal(viaIconv, pairs.map(([a]) => a).join(''));
  assert.equal(decodeEbcdic(encodeEbcdic('ZGN010000000')), 'ZGN010000000');
  assert.deepEqual(encodeEbcdic('AB', 4), hex('C1 C2 40 40'));
  assert.throws(() => encodeEbcdic('あ'));
  assert.throws(() => encodeEbcdic('TOOLONG', 3));
  assert.throws(() => decodeEbcdic(Buffer.from([0x00])));
});

test('config schemas apply the defaults and refuse bad codes', () => {
  const ep = zenginEndpointSchema.parse({ protocol: 'zengin', host: 'h', ownCode: 'F1F0F0F0F00001', partnerCode: 'F0F0F0F0F00001', password: { env: 'P' } });
  assert.equal(ep.port, 5020);
  assert.equal(ep.form, 'pc');
  assert.equal(ep.maxText, 2048);
  assert.equal(ep.timeoutSeconds, 30);
  assert.equal(ep.applicationId, '0');
  assert.deepEqual(ep.wrapper, { enabled: false, ackEvery: 1 });
  assert.throws(() => zenginEndpointSchema.parse({ ...ep, ownCode: 'XYZ' }));
  assert.throws(() => zenginEndpointSchema.parse({ ...ep, maxText: 100 }));
  assert.throws(() => zenginEndpointSchema.parse({ ...ep, password: 'plain' }));
  assert.throws(() => zenginEndpointSchema.parse({ ...ep, wrapper: { enabled: true, ackEvery: 16 } }));
  const l = zenginListenerSchema.parse({ ownCode: 'F0F0F0F0F00001' });
  assert.equal(l.port, 5020);
  assert.equal(l.inactivitySeconds, 30);
  assert.throws(() => zenginListenerSchema.parse({ ownCode: 'F0F0F0F0F00001', tlsPort: 5021 }), /tls/);
  assert.throws(() => zenginAccountSchema.parse({ partnerCode: 'F1F0F0F0F00001', password: { env: 'P' }, files: [{ zenginName: 'short', accessKey: 'KEY001', fileType: '31', direction: 'send' }] }));
});
