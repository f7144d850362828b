import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IBM037, IBM930_SBCS, IBM930_DBCS, canonicalToEncoding } from '../../formats/codepages/index.ts';
import { decodeSjis, encodeSjis, UnmappableCharacterError, checkLayout, decodeField, encodeField, blankRecord } from '../../formats/index.ts';
import { ebcdicToCanonical } from '../../formats/codepages/index.ts';
import { iconv } from './helpers.ts';
import * as childProcess from 'node:child_process';

test('sjis: hard cases round-trip with the exact CP932 bytes', () => {
  const cases: [string, string, string][] = [
    ['ｶﾞ', 'b6de', 'ｶﾞ'], // half-width ka + dakuten: two bytes
    ['～', '8160', '～'], ['〜', '8160', '～'], // WAVE DASH is the same JIS character; decodes to the CP932 form
    ['－', '817c', '－'], ['−', '817c', '－'],
    ['￥', '818f', '￥'], ['\\', '5c', '\\'],
    ['①', '8740', '①'], ['㈱', '878a', '㈱'], // NEC special characters
    ['髙', 'fbfc', '髙'], ['﨑', 'fab1', '﨑'], // IBM extensions, not the NEC-selected copies
    ['∵', '81e6', '∵'], ['ⅰ', 'fa40', 'ⅰ'], ['Ⅰ', '8754', 'Ⅰ'], ['￢', '81ca', '￢'],
  ];
  for (const [text, hex, back] of cases) {
    assert.equal(encodeSjis(text).toString('hex'), hex, text);
    assert.equal(decodeSjis(Buffer.from(hex, 'hex')), back, hex);
    assert.equal(iconv('UTF-8', 'CP932', Buffer.from(text))!.toString('hex'), hex, `glibc agrees on ${text}`);
  }
});

test('sjis: encoding refuses what CP932 cannot hold, never a "?"', () => {
  for (const ch of ['€', '😀', 'ß', '丂', '\u{20b9f}']) {
    assert.throws(() => encodeSjis(ch), UnmappableCharacterError, ch);
    assert.equal(iconv('UTF-8', 'CP932', Buffer.from(ch)), null, `glibc refuses ${ch} too`);
  }
});

test('sjis: the encoder agrees with glibc CP932 on every BMP code point', () => {
  const cps: number[] = [];
  for (let cp = 0x20; cp <= 0xffff; cp++) if (cp < 0xd800 || cp > 0xdfff) cps.push(cp);
  // one iconv run: each character on its own line; -c leaves the line empty when glibc refuses it
  const { spawnSync } = childProcess;
  const r = spawnSync('iconv', ['-c', '-f', 'UTF-8', '-t', 'CP932'], { input: Buffer.from(cps.map((c) => String.fromCodePoint(c) + '\n').join('')), maxBuffer: 1 << 26 });
  const lines = r.stdout.toString('latin1').split('\n');
  let differences = 0;
  cps.forEach((cp, i) => {
    let ours = '';
    try { ours = encodeSjis(String.fromCodePoint(cp)).toString('latin1'); } catch { ours = ''; }
    if (ours !== lines[i]) differences++;
  });
  assert.equal(differences, 0);
});

test('sjis: decoding is strict like glibc (every double-byte pair)', () => {
  const valid: number[] = [];
  const invalidSample: number[] = [];
  for (let lead = 0x81; lead <= 0xfc; lead++) {
    if (lead > 0x9f && lead < 0xe0) continue;
    for (let trail = 0x40; trail <= 0xfc; trail++) {
      if (trail === 0x7f) continue;
      try { decodeSjis(Buffer.from([lead, trail])); valid.push(lead, trail); } catch { if (invalidSample.length < 40 && trail % 7 === 0) invalidSample.push(lead, trail); }
    }
  }
  const ours = decodeSjis(Buffer.from(valid));
  assert.equal(iconv('CP932', 'UTF-8', Buffer.from(valid))!.toString('utf8'), ours);
  for (let i = 0; i < invalidSample.length; i += 2) assert.equal(iconv('CP932', 'UTF-8', Buffer.from(invalidSample.slice(i, i + 2))), null);
  for (const b of [0x80, 0xa0, 0xfd, 0xfe, 0xff]) assert.throws(() => decodeSjis(Buffer.from([b])));
});


for (const [name, table, codepage] of [['ebcdic (IBM-037)', IBM037, 'IBM037'], ['ebcdic-kana (IBM-930 single-byte)', IBM930_SBCS, 'IBM930']] as const) {
  test(`${name}: all 256 bytes decode exactly as glibc iconv -f ${codepage}`, () => {
    for (let b = 0; b < 256; b++) {
      const out = iconv(codepage, 'UTF-8', Buffer.from([b]));
      const glibc = out === null || out.length === 0 ? -1 : out.toString('utf8').codePointAt(0)!;
      assert.equal(table.toCodePoint[b], glibc, `byte 0x${b.toString(16)}`);
    }
  });
}

test('ebcdic-kana: half-width katakana and lower case letters as glibc has them', () => {
  assert.equal(IBM930_SBCS.toCodePoint[0x81], 0xff71); // ｱ
  assert.equal(IBM930_SBCS.toCodePoint[0x62], 0x61); // a (lower-case extension)
  assert.equal(IBM037.toCodePoint[0x81], 0x61); // a in IBM-037
  assert.equal(IBM037.fromCodePoint.get(0xff71), undefined); // no katakana in IBM-037
});

test('K fields in ebcdic-kana: SO + IBM-930 double bytes + SI, as glibc encodes and decodes them', () => {
  const layout = checkLayout({ name: 'k', recordLength: 21, recordType: '2', encoding: 'ebcdic-kana', framing: 'none', fields: [
    { name: 'recordType', type: 'N', length: 1, offset: 0 }, { name: 'name', type: 'K', length: 20, offset: 1 }] });
  const k = layout.byName.get('name')!;
  for (const text of ['髙橋商事', '東京都千代田区', 'カード会社', '﨑']) {
    const canon = blankRecord(layout);
    encodeField(text, canon, 0, k);
    const out = Buffer.alloc(21);
    canonicalToEncoding('ebcdic-kana', layout, canon, 0, out, 0);
    const glibcBytes = iconv('UTF-8', 'IBM930', Buffer.from(text))!;
    // glibc writes SO, the pairs, SI; the field pads with the DBCS space 0x4040 inside SO/SI
    assert.equal(out[1], 0x0e);
    assert.equal(out[20], 0x0f);
    assert.equal(out.subarray(2, 2 + glibcBytes.length - 2).toString('hex'), glibcBytes.subarray(1, -1).toString('hex'), text);
    assert.equal(iconv('IBM930', 'UTF-8', out.subarray(1))!.toString('utf8').replace(/\u3000+$/, ''), text);
    const back = Buffer.alloc(21);
    assert.equal(ebcdicToCanonical('ebcdic-kana', layout, out, 0, back, 21), -1);
    assert.equal(decodeField(back, 0, k), text);
  }
  assert.ok(IBM930_DBCS.fromCodePoint.size > 10000);
});

test('ebcdic: a character without a code is an error naming the field', () => {
  const layout = checkLayout({ name: 'c', recordLength: 6, recordType: '2', encoding: 'ebcdic', framing: 'none', fields: [
    { name: 'recordType', type: 'N', length: 1, offset: 0 }, { name: 'kana', type: 'C', length: 5, offset: 1 }] });
  const canon = blankRecord(layout);
  encodeField('ｶﾞ', canon, 0, layout.byName.get('kana')!);
  assert.throws(() => canonicalToEncoding('ebcdic', layout, canon, 0, Buffer.alloc(6), 0), /kana: byte 0xb6 has no code in ebcdic/);
  const out = Buffer.alloc(6);
  canonicalToEncoding('ebcdic-kana', layout, canon, 0, out, 0);
  assert.equal(out.toString('hex'), 'f2' + iconv('UTF-8', 'IBM930', Buffer.from('ｶﾞ'))!.toString('hex') + '404040');
});
