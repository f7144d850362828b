// The generated fast path of the record checks (formats/check-codegen.ts) against the interpreted
// checks it stands in front of: for any record, "passes" must be true exactly when the interpreted
// checks report nothing. Records of every layout family, with planted errors and random bytes
// changed, at every alignment in a buffer and at the very end of one (the byte-wise scan).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { generateFile, listFamilies, type Family, type Layout } from '../../formats/index.ts';
import { compileRecordChecker, type CheckContext } from '../../formats/record-checks.ts';
import { alignedBuffer, lineEndLength } from '../../formats/record-io.ts';
import { isEbcdic } from '../../formats/codepages/index.ts';
import { DuplicateIndex } from '../../formats/duplicate-index.ts';
import { checkProperty } from '../helpers/property.ts';

/** Bytes that sit on the edges of the byte classes the checks use. */
const EDGE_BYTES = [0x00, 0x0a, 0x0d, 0x1f, 0x20, 0x21, 0x2f, 0x30, 0x31, 0x32, 0x38, 0x39, 0x3a, 0x40, 0x7e, 0x7f, 0x80, 0x81, 0x9f, 0xa0, 0xa1, 0xdf, 0xe0, 0xfc, 0xfd, 0xff];

const pad2 = (n: number) => String(n).padStart(2, '0');
/** A value for an N field (digits, cut or padded to the field) and one for a C field. */
const edgeValueArb = fc.oneof(
  fc.record({ y: fc.constantFrom(1899, 1900, 2000, 2024, 2025, 2099, 2100), m: fc.integer({ min: 0, max: 13 }), d: fc.integer({ min: 0, max: 32 }) })
    .map(({ y, m, d }) => `${y}${pad2(m)}${pad2(d)}`),
  fc.record({ y: fc.integer({ min: 0, max: 99 }), m: fc.integer({ min: 0, max: 13 }), d: fc.integer({ min: 0, max: 32 }) }).map(({ y, m, d }) => `${pad2(y)}${pad2(m)}${pad2(d)}`),
  fc.record({ h: fc.integer({ min: 0, max: 25 }), m: fc.integer({ min: 0, max: 61 }), s: fc.integer({ min: 0, max: 61 }) }).map(({ h, m, s }) => `${pad2(h)}${pad2(m)}${pad2(s)}`),
  fc.record({ y: fc.integer({ min: 0, max: 99 }), m: fc.integer({ min: 0, max: 13 }) }).map(({ y, m }) => `${pad2(y)}${pad2(m)}`),
  fc.integer({ min: 0, max: 120 }).map(String),
  fc.constantFrom('20250331', '20250401', '20240229', '20250229', '20991231', '0', '00000000', '99999999999999999999', '1', '2', '10', '20', '30', '31', '34', '35', '61', '62', '80', '99', '2001', '2500', '3012', '3013', '0000'),
  fc.bigInt({ min: 0n, max: 10n ** 20n }).map(String),
).chain((digits) => fc.constantFrom('', digits, `${digits}   `, '4111111111111111', '4111111111111112', ' 4111111111111111', '41111111111', 'A', '+', '-', 'D').map((text) => ({ digits, text })));

interface Sample { family: Family; records: Buffer[] }

async function samples(): Promise<Sample[]> {
  const out: Sample[] = [];
  for (const family of listFamilies()) {
    // canonical bytes are the Shift_JIS form for every family, EBCDIC ones included
    const encoding = isEbcdic(family.encoding) ? 'sjis' : family.encoding;
    const gen = await generateFile(family.fileTypes[0]!, { records: 60, seed: 3, errors: true, layout: family.name, encoding, createdDate: '20250401', cardCompanyCodes: ['001', '002'], issuerCodes: ['101', '102'] }).catch(() => null);
    if (!gen?.bytes) continue;
    const stride = family.recordLength + lineEndLength(family.framing);
    const records: Buffer[] = [];
    for (let off = 0; off + family.recordLength <= gen.bytes.length; off += stride) records.push(Buffer.from(gen.bytes.subarray(off, off + family.recordLength)));
    out.push({ family, records });
  }
  return out;
}

const contexts = (family: Family): CheckContext[] => [
  { encoding: 'sjis', today: 0 },
  { encoding: 'sjis', today: 20250331, routeCodes: new Set(['001', '002', '101']), ownMerchantNos: new Set(['100000000000001']), allowedFileTypes: family.fileTypes.slice(0, 1) },
  { encoding: 'jis8', today: 20990101, routeCodes: new Set(['001', '002', '101', 'A01']) }, // not all digits: routes by string
];

test('generated checks pass a record exactly when the interpreted checks report nothing', async () => {
  const all = await samples();
  assert.ok(all.length >= 8, `samples of ${all.length} families`);
  for (const { family, records } of all) {
    const byType = new Map<string, Layout>([['1', family.header], ['2', family.data], ['8', family.trailer], ['9', family.end]]);
    for (const ctx of contexts(family)) {
      const checkers = new Map([...byType].map(([t, l]) => [t, compileRecordChecker(l, ctx, t === '2' ? family.rules : [])]));
      let passed = 0, failed = 0;
      const agree = (rec: Buffer, type: string, where: string, alignments = 4) => {
        const checker = checkers.get(type)!;
        const reports: string[] = [];
        checker.interpreted(rec, 0, -1, (f, code) => { reports.push(`${code} ${f?.name ?? ''}`); });
        const L = rec.length;
        // every alignment of a word-aligned buffer, and a buffer that ends with the record
        for (let a = 0; a < alignments; a++) {
          const buf = alignedBuffer(L + 64);
          rec.copy(buf, 8 + a);
          assert.equal(checker.passes(buf, 8 + a), reports.length === 0, `${family.name} ${type} ${where} at alignment ${a}: reported ${reports.join(', ') || 'nothing'}`);
        }
        assert.equal(checker.passes(Buffer.from(rec), 0), reports.length === 0, `${family.name} ${type} ${where} at the end of a buffer`);
        if (reports.length === 0) passed++; else failed++;
      };
      for (const [i, rec] of records.entries()) {
        const type = String.fromCharCode(rec[0]!);
        if (byType.has(type)) agree(rec, type, `record ${i + 1}`);
      }
      // every value of the short digit fields (codes, counts, months, routes), on the first data records
      const clean = records.filter((r) => r[0] === 0x32 && checkers.get('2')!.passes(Buffer.from(r), 0));
      assert.ok(clean.length > 0, `${family.name}: a data record without errors (${JSON.stringify(ctx, (_k, v) => (v instanceof Set ? [...v] : v))})`);
      for (const base of clean.slice(0, 1)) {
        for (const f of family.data.fields) {
          if (f.type !== 'N' || f.length > 4 || f.index === 0) continue;
          const rec = Buffer.from(base);
          for (let v = 0; v < 10 ** f.length; v++) {
            rec.write(String(v).padStart(f.length, '0'), f.offset, 'latin1');
            agree(rec, '2', `${f.name} = ${v}`, 1);
          }
        }
      }
      // dates: every month and day (and their edges) of a few years, and the days around today
      const dates = [1899, 1900, 2024, 2025, 2099, 2100].flatMap((y) => Array.from({ length: 14 * 33 }, (_, i) => `${y}${pad2(Math.floor(i / 33))}${pad2(i % 33)}`));
      if (ctx.today) dates.push(String(ctx.today - 1), String(ctx.today), String(ctx.today + 1));
      for (const f of family.data.fields.filter((x) => x.type === 'N' && x.length === 8)) {
        const rec = Buffer.from(clean[0]!);
        for (const d of dates) {
          rec.write(d, f.offset, 'latin1');
          agree(rec, '2', `${f.name} = ${d}`, 1);
        }
      }
      // every pair of values of two-digit fields (the rules that relate them: installments, txnType)
      const twoDigit = family.data.fields.filter((f) => f.type === 'N' && f.length === 2).slice(0, 4);
      for (const [i, f] of twoDigit.entries()) {
        for (const g of twoDigit.slice(i + 1)) {
          const rec = Buffer.from(clean[0]!);
          for (let v = 0; v < 10_000; v++) {
            rec.write(pad2(Math.floor(v / 100)), f.offset, 'latin1');
            rec.write(pad2(v % 100), g.offset, 'latin1');
            agree(rec, '2', `${f.name} = ${Math.floor(v / 100)}, ${g.name} = ${v % 100}`, 1);
          }
        }
      }
      // whole fields set to values at the edges of their checks (dates, months, codes, counts, cards)
      checkProperty(200, [fc.nat({ max: records.length - 1 }), fc.nat({ max: family.data.fields.length * 4 }), edgeValueArb], (k, which, value) => {
        const rec = Buffer.from(records[k]!);
        const type = String.fromCharCode(rec[0]!);
        const layout = byType.get(type);
        if (!layout) return;
        const f = layout.fields[1 + (which % (layout.fields.length - 1))]!;
        const text = f.type === 'C' ? value.text.padEnd(f.length, ' ').slice(0, f.length) : value.digits.padStart(f.length, '0').slice(-f.length);
        if (f.type === 'N' || f.type === 'C') rec.write(text, f.offset, 'latin1');
        agree(rec, type, `record ${k + 1} with ${f.name} = '${text}'`);
      });
      checkProperty(150, [fc.nat({ max: records.length - 1 }), fc.array(fc.tuple(fc.nat({ max: family.recordLength - 1 }), fc.oneof(fc.constantFrom(...EDGE_BYTES), fc.integer({ min: 0, max: 255 }))), { minLength: 1, maxLength: 3 })], (k, changes) => {
        const rec = Buffer.from(records[k]!);
        for (const [at, b] of changes) if (at > 0) rec[at] = b; // the record type stays
        const type = String.fromCharCode(rec[0]!);
        if (byType.has(type)) agree(rec, type, `record ${k + 1} with ${JSON.stringify(changes)}`);
      });
      assert.ok(passed > 0 && failed > 0, `${family.name}: both passing (${passed}) and failing (${failed}) records seen`);
    }
  }
});

test('duplicate index: the first record of each key, across table growth', () => {
  const index = new DuplicateIndex([[0, 4], [6, 2]], 0);
  const rec = Buffer.alloc(8);
  // 150,000 keys over 200,000 records: bytes 4-5 are not part of the key
  const keyOf = (n: number) => { rec.write(String(n % 10_000).padStart(4, '0'), 0, 'latin1'); rec.write(String(n % 97).padStart(2, '0'), 4, 'latin1'); rec.write(String(Math.floor(n / 10_000) % 15).padStart(2, '0'), 6, 'latin1'); };
  const first = new Map<string, number>();
  for (let n = 1; n <= 200_000; n++) {
    keyOf(n);
    const key = `${rec.toString('latin1', 0, 4)}${rec.toString('latin1', 6, 8)}`;
    const expected = first.get(key) ?? 0;
    if (!expected) first.set(key, n);
    const got = index.add(rec, 0, n);
    if (got !== expected) assert.fail(`record ${n} (key ${key}): got ${got}, expected ${expected}`);
  }
  assert.ok(first.size > 100_000 && first.size < 200_000, 'both new keys and duplicates');
});
