// The `concat` op of mappings writes C and N parts into a C target as bytes (formats/mapping.ts).
// It must write exactly what the string form wrote (decode each part, pad a C part back to its
// length, join, trim the end, encode), and refuse what it refused with the same error: checked
// here on random records, on the edges (spaces, kana, control bytes, a part longer than the
// target), and on a whole generated 23 converted into sales.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { compileMapping, decodeField, encodeField, generateFile, getLayout, getMapping, type FieldDef } from '../../formats/index.ts';
import { seededRandom } from '../../formats/generate.ts';
import { tmpPath } from './helpers.ts';

/** The string form of concat, as mapping.ts had it: the reference. */
function concatByStrings(src: Buffer, parts: FieldDef[], dst: Buffer, t: FieldDef): void {
  encodeField(parts.map((f) => decodeField(src, 0, f).padEnd(f.type === 'C' ? f.length : 0, ' ')).join('').trimEnd(), dst, 0, t);
}

/** What a mapping writes into one target field, or the error it throws. */
function outcome(write: (dst: Buffer) => void, length: number, t: FieldDef): string {
  const dst = Buffer.alloc(length, 0x2a);
  try {
    write(dst);
  } catch (err) {
    return `error ${(err as Error).constructor.name}: ${(err as Error).message}`;
  }
  return dst.subarray(t.offset, t.offset + t.length).toString('hex');
}

/** Bytes a partner may send in a C or N field, weighted toward the edges: spaces, digits, kana, then anything. */
function randomByte(rnd: () => number): number {
  const r = rnd();
  if (r < 0.3) return 0x20;
  if (r < 0.6) return 0x30 + Math.floor(rnd() * 10);
  if (r < 0.75) return 0x21 + Math.floor(rnd() * 0x5e);
  if (r < 0.9) return 0xa1 + Math.floor(rnd() * 0x3f);
  return Math.floor(rnd() * 256); // control bytes, 0x7f, 0x80-0xa0 (0xa0 a space to trimEnd), 0xe0-0xff
}

function checkAgainstStrings(from: string, to: string, target: string, parts: string[], records: number, seed: number): number {
  const mapping = compileMapping({ from, to, fields: { [target]: { concat: parts } } });
  const src = getLayout(from);
  const t = getLayout(to).byName.get(target)!;
  const defs = parts.map((p) => src.byName.get(p)!);
  const rnd = seededRandom(seed);
  const rec = Buffer.alloc(src.recordLength, 0x20);
  let refused = 0;
  for (let k = 0; k < records; k++) {
    for (const f of defs) {
      // a run of random bytes, then (half the time) trailing spaces
      const keep = rnd() < 0.5 ? Math.floor(rnd() * (f.length + 1)) : f.length;
      for (let i = 0; i < f.length; i++) rec[f.offset + i] = i < keep ? randomByte(rnd) : 0x20;
    }
    const expected = outcome((dst) => concatByStrings(rec, defs, dst, t), getLayout(to).recordLength, t);
    const got = outcome((dst) => mapping.apply(rec, 0, dst, 0), getLayout(to).recordLength, t);
    if (expected.startsWith('error')) refused++;
    assert.equal(got, expected, `record ${k}: ${rec.toString('hex')}`);
  }
  return refused;
}

test('concat as bytes: the same bytes and the same refusals as the string form, on random C and N parts', () => {
  // billNo C12 + billingMonth N6 into merchantRef C20 (the utility's mapping): always fits
  const refusedFitting = checkAgainstStrings('billing.data', 'sales.data', 'merchantRef', ['billNo', 'billingMonth'], 20_000, 1);
  // C20 + N5 into a C12: longer than the target, fits only when the end is spaces
  const refusedLonger = checkAgainstStrings('sales.data', 'billing.result', 'billNo', ['merchantRef', 'slipNo'], 20_000, 2);
  // both sides were exercised: records written and records refused
  assert.ok(refusedFitting > 100 && refusedFitting < 19_000, `refused ${refusedFitting}`);
  assert.ok(refusedLonger > 100 && refusedLonger < 19_900, `refused ${refusedLonger}`);
});

test('concat as bytes: the edges written as the string form writes them', () => {
  const mapping = compileMapping({ from: 'sales.data', to: 'billing.result', fields: { billNo: { concat: ['merchantRef', 'slipNo'] } } });
  const src = getLayout('sales.data');
  const to = getLayout('billing.result');
  const t = to.byName.get('billNo')!;
  const ref = src.byName.get('merchantRef')!;
  const slip = src.byName.get('slipNo')!;
  const cases: [string, Buffer, string][] = [
    ['all spaces then digits: too long', Buffer.from(' '.repeat(20), 'latin1'), '12345'],
    ['kana kept as bytes', Buffer.from([0xb1, 0xb2, 0xdf, 0xa1, ...Buffer.from(' '.repeat(16))]), '00000'],
    ['fits exactly: 7 + 5', Buffer.from('ABCDEFG'.padEnd(20, ' '), 'latin1'), '12345'],
    ['one over', Buffer.from('ABCDEFGH'.padEnd(20, ' '), 'latin1'), '12345'],
    ['a trailing 0xa0 (a space to the string form)', Buffer.from([0x41, 0xa0, ...Buffer.from(' '.repeat(18))]), '12345'],
    ['a tab', Buffer.from('A\tB'.padEnd(20, ' '), 'latin1'), '12345'],
  ];
  for (const [name, refBytes, slipDigits] of cases) {
    const rec = Buffer.alloc(src.recordLength, 0x20);
    refBytes.copy(rec, ref.offset);
    rec.write(slipDigits, slip.offset, 'latin1');
    const expected = outcome((dst) => concatByStrings(rec, [ref, slip], dst, t), to.recordLength, t);
    assert.equal(outcome((dst) => mapping.apply(rec, 0, dst, 0), to.recordLength, t), expected, name);
  }
});

test('concat as bytes: a generated 23 converts into the same sales records', async () => {
  const out = tmpPath('bills.dat');
  await generateFile('23', { records: 2_000, seed: 11, senderCode: '3000000001', receiverCode: '0000000001', createdDate: '20261130', out, framing: 'none' });
  const billing = getLayout('billing.data');
  const sales = getLayout('sales.data');
  const toSales = getMapping('billing.data', 'sales.data');
  const merchantRef = sales.byName.get('merchantRef')!;
  const parts = ['billNo', 'billingMonth'].map((n) => billing.byName.get(n)!);
  const bytes = readFileSync(out);
  const len = billing.recordLength;
  let n = 0;
  for (let off = len; off + len <= bytes.length; off += len) {
    if (bytes[off] !== 0x32) continue; // data records only
    const rec = bytes.subarray(off, off + len);
    const got = Buffer.alloc(sales.recordLength);
    toSales.apply(rec, 0, got, 0);
    const expected = Buffer.from(got);
    concatByStrings(rec, parts, expected, merchantRef);
    assert.deepEqual(got, expected, `record at ${off}`);
    const [billNo, month] = parts.map((f) => rec.toString('latin1', f.offset, f.offset + f.length)) as [string, string];
    assert.equal(got.toString('latin1', merchantRef.offset, merchantRef.offset + merchantRef.length), (billNo + month).padEnd(merchantRef.length, ' '));
    n++;
  }
  assert.equal(n, 2_000);
});
