import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { generateFile, validateFile, splitFile, writeRejectNotice, convertFile, importCsv, sniffHeader, type ValidationReport } from '../../formats/index.ts';
import { iconv, tmpPath, writeTmp } from './helpers.ts';

const header = { senderCode: '9000000000', senderName: 'TSUNAGI CENTRE', createdDate: '20250401', createdTime: '020000', receiverCode: (id: string) => `8000000${id}`, fileSeq: (id: string) => Number(id) };

test('31 -> 32 per card company: layouts, code pages, unique centreRef, trailers, skipped records', async () => {
  const g = await generateFile('31', { records: 300, seed: 4, errors: true, out: tmpPath('in31.dat'), cardCompanyCodes: ['001', '002', '003'] });
  const report = await validateFile(g.path!, { policy: 'record', routeCodes: new Set(['001', '002', '003']) });
  const forwarded: string[] = [];
  const outs = await splitFile(g.path!, {
    skipRecordNos: report.rejectedRecordNos,
    routeOf: (f) => f.cardCompanyCode!,
    targetFormat: (id) => (id === '003' ? { layout: 'sales.company120', fileType: '32' } : { layout: 'sales.data', fileType: '32' }),
    header, stampCentreRef: { start: 500000000000n, centreDate: '20250401' },
    outputPath: (id) => tmpPath(`32-${id}.dat`),
    onForward: (id, fields, info) => forwarded.push(`${id}:${info.recordNo}:${fields.centreRef}`),
  });
  assert.deepEqual(outs.map((o) => [o.destinationId, o.layout, o.encoding, o.framing]).sort(), [['001', 'sales.data', 'sjis', 'crlf'], ['002', 'sales.data', 'sjis', 'crlf'], ['003', 'sales.company120', 'ebcdic-kana', 'none']]);
  assert.equal(outs.reduce((n, o) => n + o.recordCount, 0), report.acceptedCount);
  const refs = forwarded.map((f) => f.split(':')[2]);
  assert.equal(new Set(refs).size, refs.length);
  assert.equal(refs[0], '500000000000');
  for (const o of outs) {
    const r = await validateFile(o.path, { policy: 'record', layout: o.layout === 'sales.company120' ? 'sales.company120' : undefined });
    assert.deepEqual(r.errors, [], o.destinationId);
    assert.equal(r.recordCount, o.recordCount);
    assert.equal(r.header!.fileType, '32');
    assert.equal(r.header!.receiverCode, `8000000${o.destinationId}`);
  }
  // one company120 record, byte for byte: EBCDIC digits, YYMMDD date, packed signed amount
  const c120 = readFileSync(outs.find((o) => o.destinationId === '003')!.path);
  assert.equal(c120.length % 120, 0);
  assert.equal(c120.subarray(0, 4).toString('hex'), 'f1f3f2f1'); // '1', fileType '32', codeType '1' (EBCDIC)
  const first = c120.subarray(120, 240);
  assert.equal(first[0], 0xf2);
  const amount = first.subarray(69, 75);
  assert.match(amount.toString('hex'), /^[0-9]{11}[cd]$/);
  assert.match(iconv('IBM930', 'UTF-8', first.subarray(59, 65))!.toString(), /^2503(2[5-9]|3[01])$/); // YYMMDD, read by glibc
});

test('51 fan-out: one record to several merchants', async () => {
  const g = await generateFile('51', { records: 30, seed: 2, out: tmpPath('51.dat') });
  const outs = await splitFile(g.path!, {
    routeOf: (f) => (f.targetMerchantNo ? ['m1'] : ['m1', 'm2', 'm3']),
    targetFormat: () => ({ layout: 'invalid.data', fileType: '51' }),
    header: { ...header, receiverCode: { m1: '1', m2: '2', m3: '3' }, fileSeq: 1 },
    outputPath: (id) => tmpPath(`51-${id}.dat`),
  });
  const byId = Object.fromEntries(outs.map((o) => [o.destinationId, o.recordCount]));
  assert.equal(byId.m1, 30);
  assert.equal(byId.m2, 24);
  for (const o of outs) assert.deepEqual((await validateFile(o.path, { policy: 'record' })).errors, []);
});

test('91 rejection notice: one record per error, trailer counts and digest, no whole card number', async () => {
  const g = await generateFile('31', { records: 100, seed: 8, errors: true, out: tmpPath() });
  const report: ValidationReport = await validateFile(g.path!, { policy: 'record' });
  const out = tmpPath('91.dat');
  await writeRejectNotice(report, { centreCode: '9000000000', receiverCode: '1000000001', fileSha256: 'ab'.repeat(32), createdAt: new Date('2025-04-01T00:30:00Z'), fileSeq: 3 }, out);
  const r = await validateFile(out, { policy: 'record' });
  assert.deepEqual(r.errors, []);
  assert.equal(r.recordCount, report.errors.length);
  const bytes = readFileSync(out);
  const h = sniffHeader(bytes);
  assert.deepEqual([h.fileType, h.createdDate, h.createdTime, h.receiverCode, h.fileSeq], ['91', '20250401', '093000', '1000000001', '000003']);
  const firstData = bytes.subarray(122, 242).toString('latin1');
  const e = report.errors[0]!;
  assert.equal(firstData.slice(1, 9), String(e.recordNo).padStart(8, '0'));
  assert.equal(firstData.slice(9, 13), String(e.bytePos).padStart(4, '0'));
  assert.equal(firstData.slice(13, 17), e.code);
  const trailer = bytes.subarray(122 * (report.errors.length + 1), 122 * (report.errors.length + 1) + 120).toString('latin1');
  assert.equal(trailer.slice(25, 89), 'ab'.repeat(32));
  assert.equal(Number(trailer.slice(9, 17)), report.rejectedCount);
  assert.equal(Number(trailer.slice(17, 25)), report.acceptedCount);
  const cardError = report.errors.find((x) => x.code === 'E204')!;
  const input = readFileSync(g.path!);
  const card = input.toString('latin1', (cardError.recordNo - 1) * 202 + 49, (cardError.recordNo - 1) * 202 + 68).trim();
  assert.ok(card.length >= 14);
  assert.ok(!bytes.toString('latin1').includes(card), 'the whole card number is not in the notice');
  assert.ok(bytes.toString('latin1').includes(`${card.slice(0, 6)}${'*'.repeat(card.length - 10)}${card.slice(-4)}`));
});

test('convert: sales.data <-> sales.company120, trailer recomputed, EBCDIC and back', async () => {
  const g = await generateFile('32', { records: 40, seed: 6, out: tmpPath() });
  const out = tmpPath('c120.dat');
  const r = await convertFile(g.path!, { to: 'sales.company120' }, out);
  assert.deepEqual([r.records, r.dataRecords, r.encoding, r.framing], [43, 40, 'ebcdic-kana', 'none']);
  assert.equal(readFileSync(out).length, 43 * 120);
  const v = await validateFile(out, { policy: 'record' });
  assert.deepEqual(v.errors, []);
  assert.equal(v.family, 'sales.company120');
  const back = tmpPath('back.dat');
  await convertFile(out, { to: 'sales.data', outFraming: 'lf' }, back);
  const b = await validateFile(back, { policy: 'record' });
  assert.equal(b.framing, 'lf');
  assert.equal(b.totals.recordCount, 40);
});

test('CSV import: UTF-8 and Shift_JIS, bad rows with their line numbers and codes', async () => {
  const rows = [
    'cardCompanyCode,merchantNo,storeCode,terminalId,slipNo,txnType,cardNo,expiry,useDate,useTime,paymentMethod,installments,amount,merchantRef',
    '001,111111111111111,ST01,TRM1,1,10,4111111111111111,2812,20250331,101010,10,00,1200,ﾃｽﾄ',
    '001,111111111111111,ST01,TRM1,2,10,4111111111111112,2812,20250331,101010,10,00,1200,',
    '001,111111111111111,ST01,TRM1,3,10,4111111111111111,2812,20250231,101010,10,00,1200,',
    '002,111111111111111,ST01,TRM1,4,10,4111111111111111,2812,20250331,101010,61,00,1200,漢字',
    '002,111111111111111,ST01,TRM1,5,1X,4111111111111111,2812,20250331,101010,10,00,1200,',
  ].join('\r\n') + '\r\n';
  for (const [name, bytes] of [['utf8', Buffer.from(rows)], ['sjis', iconv('UTF-8', 'CP932', Buffer.from(rows))!]] as const) {
    const out = tmpPath(`csv-${name}.dat`);
    const r = await importCsv(writeTmp(bytes, `in-${name}.csv`), '31', { out, header: { senderCode: '1000000001', createdDate: '20250401', createdTime: '120000' } });
    assert.equal(r.csvEncoding, name);
    assert.deepEqual(r.errors.map((e) => `${e.line}:${e.code}:${e.field}`), ['3:E204:cardNo', '4:E202:useDate', '5:E210:merchantRef', '5:E207:installments', '6:E201:txnType']);
    assert.equal(r.recordCount, 1);
    const v = await validateFile(out, { policy: 'record' });
    assert.deepEqual(v.errors, []);
    assert.equal(v.recordCount, 1);
  }
});
