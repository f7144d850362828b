// Property-based tests (fast-check, fixed seed: test/helpers/property.ts) of the formats engine over
// bytes a partner sends: field values round-trip through encode and decode, a header built is the
// header sniffed, and any file (mutated, cut, random) or CSV is validated or refused with our own
// error, never a crash, with error details that never hold a whole card number.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import {
  FieldEncodeError, FormatError, InvalidBytesError, buildHeader, decodeField, encodeField, generateFile, getFamily, importCsv, readHeaderFields,
  readRecords, redactCardNumbers, sniffHeader, validateFile, HEADER_FIELD_NAMES, type FieldDef, type Framing, type HeaderFields,
} from '../../formats/index.ts';
import { lineEndLength } from '../../formats/record-io.ts';
import { canonicalToEncoding, ebcdicToCanonical } from '../../formats/codepages/index.ts';
import { blankRecord } from '../../formats/field-codec.ts';
import { cardNumberArb, checkAsyncProperty, checkProperty, mutationsOf, parsesOrRefuses, parsesOrRefusesAsync } from '../helpers/property.ts';
import { tmpPath } from './helpers.ts';

/** Text that a partner would see whole card numbers in: none may be there (masked forms are fine). */
function assertNoCardNumber(text: string, where: string): void {
  assert.equal(redactCardNumbers(text), text, `${where} holds what could be a whole card number: ${text.replace(/\d/g, '9')}`);
}

const field = (type: FieldDef['type'], length: number): FieldDef => ({ name: `f${type}`, type, offset: 3, length, index: 0 }) as FieldDef;

const HALF_KANA = Array.from({ length: 0xff9f - 0xff61 + 1 }, (_, i) => String.fromCharCode(0xff61 + i));
const C_CHARS = [...Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)), ...HALF_KANA];
const K_CHARS = [...'あいうえおかきくけこアイウエオ漢字東京大阪銀行加盟店売上０１２３ＡＢＣ　・ー'];

test('field codec: encode then decode is the identity for N, C, K, P and Z values that fit', () => {
  checkProperty(300, [fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 20 })], (len, ds) => {
    const v = ds.slice(0, len).join('');
    const f = field('N', len);
    const buf = Buffer.alloc(len + 5, 0x20);
    encodeField(v, buf, 0, f);
    assert.equal(decodeField(buf, 0, f), v.padStart(len, '0'));
  });
  checkProperty(300, [fc.integer({ min: 1, max: 30 }), fc.array(fc.constantFrom(...C_CHARS), { maxLength: 30 })], (len, cs) => {
    const v = cs.slice(0, len).join('').replace(/ +$/, '');
    const f = field('C', len);
    const buf = Buffer.alloc(len + 5);
    encodeField(v, buf, 0, f);
    assert.equal(decodeField(buf, 0, f), v);
  });
  checkProperty(300, [fc.integer({ min: 1, max: 15 }), fc.array(fc.constantFrom(...K_CHARS), { maxLength: 15 })], (chars, ks) => {
    const v = ks.slice(0, chars).join('').replace(/\u3000+$/, '');
    const f = field('K', chars * 2);
    const buf = Buffer.alloc(chars * 2 + 5);
    encodeField(v, buf, 0, f);
    assert.equal(decodeField(buf, 0, f), v);
  });
  checkProperty(300, [fc.integer({ min: 1, max: 8 }), fc.bigInt({ min: -(10n ** 15n), max: 10n ** 15n })], (len, n) => {
    for (const type of ['P', 'Z'] as const) {
      const f = field(type, len);
      const buf = Buffer.alloc(len + 5);
      const v = String(n);
      const fits = type === 'P' ? BigInt(n < 0n ? -n : n) < 10n ** BigInt(len * 2 - 1) : v.replace('-', '').length <= len;
      if (!fits) {
        assert.throws(() => encodeField(v, buf, 0, f), FieldEncodeError);
        continue;
      }
      encodeField(v, buf, 0, f);
      assert.equal(decodeField(buf, 0, f), n === 0n ? '0' : v);
    }
  });
});

test('field codec: any text either encodes or is a FieldEncodeError whose message holds no whole card number', () => {
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 30 }),
    cardNumberArb,
    cardNumberArb.map((c) => c.replace(/(\d{4})(?=\d)/g, '$1-')),
    cardNumberArb.map((c) => c.replace(/(\d{4})(?=\d)/g, '$1 ')),
  );
  checkProperty(400, [fc.constantFrom('N', 'C', 'K', 'P', 'Z' as const), fc.integer({ min: 1, max: 20 }), text], (type, len, v) => {
    const f = field(type, type === 'K' ? len * 2 : len);
    const buf = Buffer.alloc(f.length + 5);
    try {
      encodeField(v, buf, 0, f);
    } catch (err) {
      assert.ok(err instanceof FieldEncodeError, `${type}${len} '${v}': ${(err as Error).constructor.name}: ${(err as Error).message}`);
      assertNoCardNumber(err.message, `FieldEncodeError for ${type}${len}`);
    }
  });
});

test('field codec: any bytes decode, or a K field is an InvalidBytesError', () => {
  checkProperty(400, [fc.constantFrom('N', 'C', 'K', 'P', 'Z' as const), fc.integer({ min: 1, max: 12 }), fc.uint8Array({ minLength: 40, maxLength: 40 })], (type, len, raw) => {
    const f = field(type, type === 'K' ? len * 2 : len);
    parsesOrRefuses(() => decodeField(Buffer.from(raw), 0, f), [InvalidBytesError]);
  });
});

/** A value of the field's type that fits it (C: for IBM930 (ebcdic-kana) upper-case ASCII and half-width kana, for IBM037 ASCII). */
function valueArb(f: FieldDef, enc: 'ebcdic' | 'ebcdic-kana'): fc.Arbitrary<string> {
  if (f.type === 'N') return fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: f.length }).map((d) => d.join(''));
  if (f.type === 'P') return fc.integer({ min: -(10 ** Math.min(15, f.length * 2 - 1) - 1), max: 10 ** Math.min(15, f.length * 2 - 1) - 1 }).map(String);
  if (f.type === 'Z') return fc.integer({ min: 0, max: 10 ** Math.min(15, f.length) - 1 }).map(String);
  const chars = enc === 'ebcdic' ? C_CHARS.filter((c) => c < '\x7f') : C_CHARS.filter((c) => !/[a-z`{|}~\\^\[\]]/.test(c));
  return fc.array(fc.constantFrom(...chars), { maxLength: f.length }).map((a) => a.join(''));
}

test('code pages: a canonical record written in EBCDIC reads back to the same canonical bytes', () => {
  for (const [name, enc] of [['sales.company120', 'ebcdic-kana'], ['sales', 'ebcdic-kana'], ['validity', 'ebcdic']] as const) {
    const layout = getFamily(name).data;
    const fields = layout.fields.filter((f) => f.name !== 'recordType' && f.name !== 'filler');
    let roundTrips = 0;
    checkProperty(60, [fc.tuple(...fields.map((f) => valueArb(f, enc)))], (values) => {
      const rec = blankRecord(layout);
      fields.forEach((f, i) => encodeField(values[i]!, rec, 0, f));
      const wire = Buffer.alloc(layout.recordLength);
      try {
        canonicalToEncoding(enc, layout, rec, 0, wire, 0);
      } catch (err) {
        assert.ok(err instanceof FieldEncodeError, String(err));
        return; // a character the code page has no code for: refused, never replaced
      }
      const back = Buffer.alloc(layout.recordLength);
      assert.equal(ebcdicToCanonical(enc, layout, wire, 0, back, layout.recordLength), -1, `${name} in ${enc}: a byte we wrote is not valid`);
      assert.deepEqual([...back], [...rec], `${name} in ${enc}`);
      roundTrips++;
    });
    assert.ok(roundTrips >= 10, `${name} in ${enc}: only ${roundTrips} records could be written at all`);
  }
});

const headerArb: fc.Arbitrary<HeaderFields> = fc.record({
  fileType: fc.constantFrom('31', '32', '41', '61', '91'),
  codeType: fc.constant('0'),
  senderCode: fc.stringMatching(/^[0-9]{10}$/),
  senderName: fc.array(fc.constantFrom(...C_CHARS.slice(1)), { maxLength: 20 }).map((a) => a.join('')),
  createdDate: fc.stringMatching(/^20[0-9]{6}$/),
  createdTime: fc.stringMatching(/^[0-9]{6}$/),
  receiverCode: fc.stringMatching(/^[0-9]{10}$/),
  periodFrom: fc.stringMatching(/^[0-9]{8}$/),
  periodTo: fc.stringMatching(/^[0-9]{8}$/),
  fileSeq: fc.stringMatching(/^[0-9]{6}$/),
  cycle: fc.constantFrom('0', '1', '2'),
});

test('header: a header built is the header sniffed, on either record length and framing', () => {
  checkProperty(300, [headerArb, fc.constantFrom<Framing>('crlf', 'lf', 'none')], (h, framing) => {
    const L = getFamily(h.fileType === '31' || h.fileType === '32' ? 'sales' : h.fileType === '41' ? 'validity' : h.fileType === '61' ? 'gift' : 'reject').recordLength;
    const rec = buildHeader(h, L);
    const eol = framing === 'crlf' ? '\r\n' : framing === 'lf' ? '\n' : '';
    const next = Buffer.alloc(L, 0x20);
    next[0] = 0x32;
    const bytes = Buffer.concat([rec, Buffer.from(eol), next, Buffer.from(eol)]);
    const info = sniffHeader(bytes);
    assert.equal(info.recordLength, L);
    assert.equal(info.framing, framing);
    const back = readHeaderFields(rec);
    for (const k of HEADER_FIELD_NAMES) assert.equal(back[k], String(h[k]).replace(/ +$/, ''), k);
  });
});

test('header: mutated, cut and random first bytes are sniffed or a FormatError', () => {
  const valid = Buffer.concat([buildHeader({ fileType: '31', senderCode: '1000000001', createdDate: '20250401', fileSeq: '000001' }, 200), Buffer.from('\r\n'), Buffer.alloc(202, 0x20)]);
  const ebcdicish = Buffer.from(valid.map((b) => (b >= 0x30 && b <= 0x39 ? b + 0xc0 : b === 0x20 ? 0x40 : b)));
  checkProperty(600, [fc.oneof(mutationsOf(valid), mutationsOf(ebcdicish))], (raw) => {
    parsesOrRefuses(() => sniffHeader(raw), [FormatError]);
  });
});

test('record reader: any file on any grid yields at most size/stride records, each whole, and a clear break', async () => {
  await checkAsyncProperty(120, [fc.integer({ min: 1, max: 250 }), fc.constantFrom<Framing>('crlf', 'lf', 'none'), fc.uint8Array({ maxLength: 3000 }), fc.integer({ min: 1, max: 700 })], async (L, framing, raw, chunkSize) => {
    const p = tmpPath('grid.dat');
    writeFileSync(p, raw);
    const stride = L + lineEndLength(framing);
    let seen = 0;
    const r = await readRecords(p, { recordLength: L, framing, chunkSize }, (buf, off, no) => {
      seen++;
      assert.equal(no, seen);
      assert.ok(off + L <= buf.length);
    });
    assert.equal(r.records, seen);
    // it stops reading at the first break of the grid
    if (r.gridBreak) assert.match(r.gridBreak.detail, /record|bytes/);
    else assert.equal(r.bytes, raw.length);
    assert.ok(r.bytes <= raw.length);
    assert.ok(seen <= Math.ceil(raw.length / stride));
  });
});

/** Every error detail and every omitted one of a report: none may hold a whole card number. */
function assertReportClean(report: Awaited<ReturnType<typeof validateFile>>): void {
  for (const e of [...report.errors, ...(report.firstOmitted ? [report.firstOmitted] : [])]) {
    assert.ok(e.recordNo >= 1 && e.bytePos >= 0, JSON.stringify(e));
    // a field error names its field and where it starts
    if (e.code.startsWith('E2')) assert.ok(e.field !== '' && e.bytePos >= 1, `field error without its field: ${JSON.stringify(e)}`);
    assertNoCardNumber(e.detail, `error ${e.code} on record ${e.recordNo}`);
    assertNoCardNumber(e.field, `field of error ${e.code}`);
  }
}

test('validation: mutated, cut and extended files of each family and code page are reported, never a crash, and no detail holds a card number', async () => {
  const samples: Buffer[] = [];
  for (const [fileType, layout, errors] of [['31', undefined, false], ['31', undefined, true], ['32', 'sales.company120', true], ['41', undefined, true], ['61', undefined, false]] as const) {
    const out = tmpPath(`sample-${fileType}.dat`);
    await generateFile(fileType, { records: 6, seed: 7, errors, layout, out });
    samples.push(readFileSync(out));
  }
  await checkAsyncProperty(100, [fc.oneof(...samples.map((s) => mutationsOf(s))), fc.constantFrom<'file' | 'record'>('file', 'record')], async (raw, policy) => {
    const p = tmpPath('mutated.dat');
    writeFileSync(p, raw);
    const report = (await parsesOrRefusesAsync(() => validateFile(p, { policy, today: '20991231' }), [FormatError]))!;
    assert.ok(report, 'validateFile refused a file instead of reporting on it');
    assert.ok(report.recordCount <= raw.length / 120 + 1);
    assert.equal(report.acceptedCount + report.rejectedCount, report.recordCount);
    if (report.errorCount === 0) assert.equal(report.fileRejected, false);
    assertReportClean(report);
  });
});

const CSV_COLUMNS = ['cardCompanyCode', 'merchantNo', 'storeCode', 'terminalId', 'slipNo', 'txnType', 'cardNo', 'expiry', 'useDate', 'useTime', 'paymentMethod', 'installments', 'amount', 'merchantRef'];
const goodRow = ['001', '111111111111111', 'ST01', 'TRM1', '1', '10', '4111111111111111', '2812', '20250331', '101010', '10', '00', '1200', 'ﾃｽﾄ'];
const cellArb = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 2, arbitrary: cardNumberArb },
  { weight: 1, arbitrary: cardNumberArb.map((c) => c.replace(/(\d{4})(?=\d)/g, '$1-')) },
  { weight: 1, arbitrary: fc.constantFrom('"', '""', '"a,b"', '\r', '\n', ',', '漢字', '\u0000', '\ufeff') },
);
const csvArb = fc
  .tuple(
    fc.array(fc.tuple(fc.array(fc.tuple(fc.nat({ max: 13 }), cellArb), { maxLength: 4 }), fc.integer({ min: -2, max: 2 })), { maxLength: 8 }),
    fc.constantFrom('\r\n', '\n'),
    fc.boolean(),
  )
  .map(([rows, eol, bom]) => {
    const lines = [CSV_COLUMNS.join(',')];
    for (const [changes, widthChange] of rows) {
      const cells = [...goodRow];
      for (const [at, v] of changes) cells[at] = /[",\r\n]/.test(v) && !v.startsWith('"') ? `"${v.replace(/"/g, '""')}"` : v;
      if (widthChange < 0) cells.splice(widthChange);
      else for (let i = 0; i < widthChange; i++) cells.push('x');
      lines.push(cells.join(','));
    }
    return Buffer.from((bom ? '\ufeff' : '') + lines.join(eol) + eol);
  });

test('CSV import: any CSV a merchant uploads is imported or refused with a FormatError; row errors name line and field and hold no card number', async () => {
  await checkAsyncProperty(80, [fc.oneof({ weight: 4, arbitrary: csvArb }, { weight: 1, arbitrary: csvArb.chain((b) => mutationsOf(b)) })], async (bytes) => {
    const input = tmpPath('in.csv');
    writeFileSync(input, bytes);
    const out = tmpPath('out.dat');
    const r = await parsesOrRefusesAsync(() => importCsv(input, '31', { out, header: { senderCode: '1000000001', createdDate: '20250401', createdTime: '120000' } }), [FormatError]);
    if (!r) return;
    assert.equal(r.recordCount + r.rejectedLines.length, r.rows);
    for (const e of r.errors) {
      assert.ok(e.line >= 2, `row error on line ${e.line}`);
      assertNoCardNumber(e.detail, `CSV error ${e.code} on line ${e.line}`);
      if (e.code.startsWith('E2')) assert.ok(e.field !== '', `CSV field error without its field: ${JSON.stringify(e)}`);
    }
    const v = await validateFile(out, { policy: 'record' });
    assert.equal(v.recordCount, r.recordCount);
    assert.deepEqual(v.errors.filter((e) => e.code.startsWith('E1')), []);
  });
});

// Counterexamples the properties found, kept as plain examples.

test('counterexample: a card number that does not fit a packed or zoned field is not echoed in the error', () => {
  for (const type of ['P', 'Z'] as const) {
    const err = (() => { try { encodeField('4000000000000002', Buffer.alloc(9), 0, field(type, 1)); } catch (e) { return e as Error; } })();
    assert.ok(err instanceof FieldEncodeError);
    assert.doesNotMatch(err.message, /4000000000000002/);
    assert.match(err.message, /a value of 16 characters does not fit/);
  }
});

const CSV_HEAD = `${CSV_COLUMNS.join(',')}\r\n`;
const importOf = async (body: Buffer | string) => {
  const input = tmpPath('example.csv');
  writeFileSync(input, Buffer.concat([Buffer.from(CSV_HEAD), Buffer.from(body)]));
  return importCsv(input, '31', { out: tmpPath('example.dat'), header: { senderCode: '1000000001', createdDate: '20250401', createdTime: '120000' } });
};

test('counterexample: a CSV row with a cell missing is a FormatError naming its line (csv-parse threw its own CsvError)', async () => {
  await assert.rejects(importOf(`${goodRow.slice(0, 13).join(',')}\r\n`), (err: Error) => err instanceof FormatError && /line 2: Invalid Record Length/.test(err.message));
});

test('counterexample: a stray quote before a card number is a FormatError that does not quote the cell', async () => {
  await assert.rejects(importOf('001,1"4111111111111111",x\r\n'), (err: Error) => err instanceof FormatError && /line 2: Invalid Opening Quote/.test(err.message) && !err.message.includes('4111111111111111'));
});

test('counterexample: bytes valid in neither UTF-8 nor Shift_JIS are E109 (the import left the rejection unhandled, which ended the process)', async () => {
  await assert.rejects(importOf(Buffer.from([0x81, 0x20, 0xff])), (err: Error) => err instanceof FormatError && (err as FormatError).code === 'E109');
});
