import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readRecords, checkLayout, encodeField, decodeField, blankRecord, sniffHeader, buildHeader, maskCardNumber, maskCardNumbersIn, luhnValid } from '../../formats/index.ts';
import { writeTmp } from './helpers.ts';

const recs = (n: number, len: number, eol: string) => Array.from({ length: n }, (_, i) => String(i).padEnd(len, 'x') + eol).join('');

for (const [framing, eol] of [['none', ''], ['crlf', '\r\n'], ['lf', '\n']] as const) {
  test(`reader: ${framing} framing, records across 1 KiB chunks, trailing 0x1A tolerated`, async () => {
    const path = writeTmp(Buffer.concat([Buffer.from(recs(50, 120, eol)), Buffer.from([0x1a])]));
    const seen: string[] = [];
    const r = await readRecords(path, { recordLength: 120, framing, chunkSize: 1024 }, (buf, off, no) => seen.push(`${no}:${buf.toString('latin1', off, off + 3)}`));
    assert.equal(r.gridBreak, null);
    assert.equal(r.records, 50);
    assert.equal(seen[49], '50:49x');
  });
}

test('reader: truncated file and mixed line ends break the grid (E101) at the right record', async () => {
  const truncated = writeTmp(recs(3, 120, '\r\n').slice(0, -10));
  const r1 = await readRecords(truncated, { recordLength: 120, framing: 'crlf' }, () => {});
  assert.deepEqual([r1.records, r1.gridBreak?.recordNo], [2, 3]);
  const mixed = writeTmp(recs(2, 120, '\r\n') + recs(1, 120, '\n') + recs(1, 120, '\r\n'));
  const r2 = await readRecords(mixed, { recordLength: 120, framing: 'crlf' }, () => {});
  assert.equal(r2.gridBreak?.recordNo, 3);
  assert.match(r2.gridBreak!.detail, /mixed line ends/);
});

test('fields: N, C, K, P and Z encode to exact bytes and decode back', () => {
  const layout = checkLayout({ name: 't', recordLength: 37, recordType: '2', encoding: 'sjis', framing: 'none', fields: [
    { name: 'recordType', type: 'N', length: 1, offset: 0 }, { name: 'n', type: 'N', length: 6, offset: 1 }, { name: 'c', type: 'C', length: 8, offset: 7 },
    { name: 'k', type: 'K', length: 8, offset: 15 }, { name: 'p', type: 'P', length: 6, offset: 23 }, { name: 'z', type: 'Z', length: 8, offset: 29 }] });
  const rec = blankRecord(layout);
  const f = (n: string) => layout.byName.get(n)!;
  encodeField('42', rec, 0, f('n'));
  encodeField('ｶﾞｽ A', rec, 0, f('c'));
  encodeField('髙橋', rec, 0, f('k'));
  encodeField('-12345', rec, 0, f('p'));
  encodeField('-907', rec, 0, f('z'));
  assert.equal(rec.toString('hex'), '32' + Buffer.from('000042').toString('hex') + 'b6debd2041202020' + 'fbfc8bb481408140' + '00000012345d' + Buffer.from('0000090').toString('hex') + '77');
  assert.deepEqual(['n', 'c', 'k', 'p', 'z'].map((n) => decodeField(rec, 0, f(n))), ['000042', 'ｶﾞｽ A', '髙橋', '-12345', '-907']);
  assert.throws(() => encodeField('1234567', rec, 0, f('n')), /7 digits do not fit 6/);
  assert.throws(() => encodeField('漢字', rec, 0, f('c')), /not allowed in a C field/);
  assert.throws(() => encodeField('€', rec, 0, f('k')), /cannot be written in sjis/);
  assert.throws(() => encodeField('ABCDEFGHI', rec, 0, f('c')), /longer than 8/);
});

test('sniffHeader: reads every header field, the record length, framing and code page family', () => {
  const h = buildHeader({ fileType: '41', codeType: '0', senderCode: '1234567890', senderName: 'ﾃｽﾄ ｼｮｳｼﾞ', createdDate: '20250401', createdTime: '235959', receiverCode: '9000000000', periodFrom: '20250301', periodTo: '20250331', fileSeq: '17' }, 120);
  const info = sniffHeader(Buffer.concat([h, Buffer.from('\r\n2')]));
  assert.deepEqual({ ...info }, { fileType: '41', codeType: '0', senderCode: '1234567890', senderName: 'ﾃｽﾄ ｼｮｳｼﾞ', createdDate: '20250401', createdTime: '235959', receiverCode: '9000000000', periodFrom: '20250301', periodTo: '20250331', fileSeq: '000017', cycle: '', recordLength: 120, framing: 'crlf', encodingFamily: 'ascii', encoding: 'sjis', family: 'validity', recordLengthSeen: true });
  // A data record first is a known record out of order: E103, as the spec says, not E102.
  assert.throws(() => sniffHeader(Buffer.from('2'.repeat(200))), (err: Error & { code?: string }) => err.code === 'E103' && /records out of order/.test(err.message));
  assert.throws(() => sniffHeader(Buffer.from('1')), /not a header record/);
});

test('card numbers: Luhn and masking to first 6 / last 4', () => {
  assert.ok(luhnValid('4111111111111111'));
  assert.ok(!luhnValid('4111111111111112'));
  assert.equal(maskCardNumber('4111111111111111'), '411111******1111');
  assert.equal(maskCardNumbersIn('card 3530111333300000 failed'), 'card 353011**********0000 failed'.replace('**********', '******'));
});
