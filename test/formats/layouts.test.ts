import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkLayout, cutLayout, getFamily, getLayout, listFamilies, listLayouts, LayoutError } from '../../formats/index.ts';

const SPEC_LAYOUTS = ['header', 'end', 'sales.data', 'sales.trailer', 'validity.data', 'validity.trailer', 'invalid.data', 'invalid.trailer', 'gift.data', 'gift.trailer',
  'terminal.data', 'terminal.trailer', 'jmanager.data', 'jmanager.trailer', 'reject.data', 'reject.trailer', 'sales.company120', 'sales.company120.trailer',
  'registration.data', 'registration.trailer', 'registration.result', 'registration.result.trailer', 'billing.data', 'billing.trailer', 'billing.result', 'billing.result.trailer'];

test('every layout of the spec is a data file and loads', () => {
  assert.deepEqual(listLayouts().map((l) => l.name).sort(), [...SPEC_LAYOUTS].sort());
});

test('offsets and lengths follow the spec', () => {
  const at = (layout: string, field: string) => { const f = getLayout(layout).byName.get(field)!; return [f.type, f.length, f.offset]; };
  assert.deepEqual(at('header', 'fileSeq'), ['N', 6, 94]);
  assert.deepEqual(at('header', 'cycle'), ['C', 1, 100]);
  assert.deepEqual(at('sales.data', 'cardNo'), ['C', 19, 49]);
  assert.deepEqual(at('sales.data', 'payoutDate'), ['N', 8, 178]);
  assert.deepEqual(at('validity.data', 'newExpiry'), ['N', 4, 85]);
  assert.deepEqual(at('invalid.data', 'targetMerchantNo'), ['C', 15, 46]);
  assert.deepEqual(at('gift.data', 'amount'), ['N', 10, 68]);
  assert.deepEqual(at('terminal.trailer', 'amountSign'), ['C', 1, 23]);
  assert.deepEqual(at('jmanager.data', 'netAmount'), ['N', 12, 111]);
  assert.deepEqual(at('reject.trailer', 'fileSha256'), ['C', 64, 25]);
  assert.deepEqual(at('sales.company120', 'amount'), ['P', 6, 69]);
  assert.deepEqual(at('sales.company120.trailer', 'netAmount'), ['P', 8, 9]);
  // utility billing (utility.md)
  assert.deepEqual(at('registration.data', 'cardNo'), ['C', 19, 25]);
  assert.deepEqual(at('registration.data', 'applicationDate'), ['N', 8, 78]);
  assert.deepEqual(at('registration.trailer', 'deleteCount'), ['N', 8, 25]);
  assert.deepEqual(at('registration.result', 'eventDate'), ['N', 8, 29]);
  assert.deepEqual(at('registration.result.trailer', 'errorCount'), ['N', 8, 17]);
  assert.deepEqual(at('billing.data', 'billNo'), ['C', 12, 46]);
  assert.deepEqual(at('billing.trailer', 'totalAmount'), ['N', 12, 9]);
  assert.deepEqual(at('billing.result', 'centreRef'), ['N', 12, 55]);
  assert.deepEqual(at('billing.result.trailer', 'rejectedCount'), ['N', 8, 29]);
});

test('families carry their default code page and framing and record length', () => {
  for (const f of listFamilies()) {
    if (f.name === 'sales.company120') assert.deepEqual([f.encoding, f.framing, f.recordLength], ['ebcdic-kana', 'none', 120]);
    else assert.deepEqual([f.encoding, f.framing], ['sjis', 'crlf'], f.name);
    assert.equal(f.header.recordLength, f.recordLength);
    assert.equal(f.end.recordLength, f.recordLength);
  }
  assert.equal(getFamily('validity').header.byName.get('filler')!.length, 19);
});

test('the loader refuses layouts that do not add up', () => {
  const base = { name: 'x', recordLength: 10, recordType: '2', encoding: 'sjis', framing: 'crlf' };
  const rt = { name: 'recordType', type: 'N', length: 1, offset: 0 };
  assert.throws(() => checkLayout({ ...base, fields: [rt, { name: 'a', type: 'C', length: 8, offset: 1 }] }), /add up to 9/);
  assert.throws(() => checkLayout({ ...base, fields: [rt, { name: 'a', type: 'C', length: 5, offset: 1 }, { name: 'b', type: 'C', length: 5, offset: 5 }] }), /overlap/);
  assert.throws(() => checkLayout({ ...base, fields: [rt, { name: 'a', type: 'C', length: 4, offset: 2 }, { name: 'b', type: 'C', length: 4, offset: 6 }] }), /gap/);
  assert.throws(() => checkLayout({ ...base, fields: [rt, { name: 'a', type: 'X', length: 9, offset: 1 }] }), /unknown type 'X'/);
  assert.throws(() => checkLayout({ ...base, encoding: 'utf8', fields: [rt, { name: 'a', type: 'C', length: 9, offset: 1 }] }), /unknown encoding/);
  assert.throws(() => checkLayout({ ...base, fields: [rt, { name: 'a', type: 'C', length: 9, offset: 1, check: 'luck' }] }), LayoutError);
  assert.throws(() => cutLayout(getLayout('sales.data'), 120), /only the trailing filler/);
});
