import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { generateFile, validateFile, KNOWN_FILE_TYPES, makeDuplicateFileError } from '../../formats/index.ts';
import { tmpPath, writeTmp } from './helpers.ts';

const key = (e: { recordNo: number; bytePos: number; code: string; field: string }) => `${e.recordNo}:${e.bytePos}:${e.code}:${e.field}`;

for (const fileType of KNOWN_FILE_TYPES) {
  test(`${fileType}: a generated file is valid; planted errors are found exactly`, async () => {
    const good = await generateFile(fileType, { records: 120, seed: 11, out: tmpPath(`${fileType}.dat`) });
    const ok = await validateFile(good.path!, { policy: 'record' });
    assert.deepEqual(ok.errors, []);
    assert.equal(ok.recordCount, 120);
    assert.deepEqual(ok.totals, good.totals);
    const bad = await generateFile(fileType, { records: 240, seed: 12, errors: true, out: tmpPath(`${fileType}-bad.dat`) });
    const r = await validateFile(bad.path!, { policy: 'record' });
    assert.deepEqual(r.errors.map(key).sort(), bad.planted.map(key).sort());
    assert.equal(r.fileRejected, false);
    assert.equal(r.rejectedCount, new Set(bad.planted.map((p) => p.recordNo)).size);
  });
}

test('sales.company120 (EBCDIC, no framing, packed amounts): planted errors found', async () => {
  const g = await generateFile('32', { records: 200, seed: 5, errors: true, layout: 'sales.company120', out: tmpPath('c120.dat') });
  const r = await validateFile(g.path!, { policy: 'record' });
  assert.equal(r.family, 'sales.company120');
  assert.equal(r.encoding, 'ebcdic-kana');
  assert.deepEqual(r.errors.map(key).sort(), g.planted.map(key).sort());
  assert.ok(g.planted.some((p) => p.code === 'E303'));
});

test('policy file rejects the whole file on one record error; structural errors always do', async () => {
  const g = await generateFile('31', { records: 50, seed: 3, errors: true, out: tmpPath() });
  const r = await validateFile(g.path!, { policy: 'file' });
  assert.equal(r.fileRejected, true);
  assert.deepEqual([r.acceptedCount, r.rejectedCount], [0, 50]);
});

test('card numbers never appear whole in error details', async () => {
  const g = await generateFile('31', { records: 60, seed: 9, errors: true, out: tmpPath() });
  const r = await validateFile(g.path!, { policy: 'record' });
  const e = r.errors.find((x) => x.code === 'E204')!;
  assert.match(e.detail, /^\d{6}\*+\d{4}: Luhn check fails$/);
  for (const x of r.errors) assert.doesNotMatch(x.detail, /\d{12,}/);
});

async function salesFile(records = 5) {
  const g = await generateFile('31', { records, seed: 21, out: tmpPath(), cardCompanyCodes: ['001', '002'], merchantNo: ['111111111111111'] });
  return { path: g.path!, bytes: readFileSync(g.path!) };
}
const REC = 202; // 200 + CRLF

test('E301 no route, E302 foreign merchant, E107 file type not allowed, E202 future date', async () => {
  const { path } = await salesFile();
  const r = await validateFile(path, { policy: 'record', routeCodes: new Set(['001']), ownMerchantNos: new Set(['999']), allowedFileTypes: ['41'], today: '20250330' });
  const codes = r.errors.map((e) => `${e.recordNo}:${e.code}:${e.field}`);
  assert.ok(codes.includes('1:E107:fileType'));
  assert.ok(codes.includes('3:E301:cardCompanyCode')); // record 3 = second data record, company 002
  assert.ok(!codes.includes('2:E301:cardCompanyCode'));
  assert.ok(codes.includes('2:E302:merchantNo'));
  assert.ok(codes.some((c) => c.endsWith(':E202:useDate')), 'a use date of 20250331 is after today');
  assert.equal(r.fileRejected, true); // E107 is structural
});

test('structure: E101 truncated, E102 unknown record type, E103 order, E104 missing end, E105/E106 totals, E109 bytes', async () => {
  const { bytes } = await salesFile(4);
  const run = async (b: Buffer) => (await validateFile(writeTmp(b), { policy: 'record' })).errors.map((e) => `${e.recordNo}:${e.bytePos}:${e.code}:${e.field}`);
  assert.deepEqual(await run(bytes.subarray(0, bytes.length - 50)), ['7:0:E101:']);
  const unknown = Buffer.from(bytes); unknown[2 * REC] = 0x37;
  // the unknown record is not a data record, so the trailer no longer adds up either
  assert.deepEqual(await run(unknown), ['3:1:E102:recordType', '6:2:E105:recordCount', '6:10:E105:saleCount', '6:18:E106:saleAmount']);
  const swapped = Buffer.concat([bytes.subarray(0, REC), bytes.subarray(5 * REC, 6 * REC), bytes.subarray(REC, 5 * REC), bytes.subarray(6 * REC)]);
  assert.ok((await run(swapped)).includes('3:0:E103:'));
  assert.deepEqual(await run(bytes.subarray(0, 6 * REC)), ['7:0:E104:']);
  const count = Buffer.from(bytes); count.write('00000009', 5 * REC + 1, 'latin1');
  assert.deepEqual(await run(count), ['6:2:E105:recordCount']);
  const amount = Buffer.from(bytes); amount.write('000000000001', 5 * REC + 17, 'latin1');
  assert.deepEqual(await run(amount), ['6:18:E106:saleAmount']);
  const badByte = Buffer.from(bytes); badByte[REC + 136] = 0xa0; // not a CP932 byte, in merchantRef
  assert.deepEqual(await run(badByte), ['2:137:E109:merchantRef']);
  const control = Buffer.from(bytes); control[REC + 136] = 0x09;
  assert.deepEqual(await run(control), ['2:137:E210:merchantRef']);
  const withEof = Buffer.concat([bytes, Buffer.from([0x1a])]);
  assert.deepEqual(await run(withEof), []);
  const twoGroups = Buffer.concat([bytes.subarray(0, 6 * REC), bytes.subarray(0, 6 * REC), bytes.subarray(6 * REC)]);
  assert.deepEqual((await run(twoGroups)).filter((e) => !e.endsWith('E303:')), []);
});

test('E108 is built for the caller', () => {
  assert.deepEqual(makeDuplicateFileError(), { recordNo: 1, bytePos: 0, code: 'E108', field: 'fileSeq', detail: 'same sender, fileType and fileSeq already accepted' });
});
