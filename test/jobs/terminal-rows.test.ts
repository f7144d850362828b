// The byte-level 81 load path against the string decoding it replaced: the same transaction values
// (packed from the record bytes and read back) and the same aggregates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blankRecord, decodeField, encodeField, familyForFileType, maskCardNumber, seededRandom } from '../../formats/index.ts';
import { AGG_COLUMNS, TerminalAggregator, TerminalAmount, TXN_COLUMNS } from '../../jobs/terminal/rows.ts';
import { terminalTxnsOfFile } from '../../jobs/terminal/pack.ts';
import { sqliteLedger } from '../helpers/ledgers.ts';
import { terminalSink } from '../../jobs/terminal/sink.ts';

const layout = familyForFileType('81')!.data;

function records(n: number): Buffer[] {
  const rnd = seededRandom(7);
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const rec = blankRecord(layout);
    const set = (name: string, v: string) => encodeField(v, rec, 0, layout.byName.get(name)!);
    set('merchantNo', pick(['500000000000001', '5000001', ' 5000002', 'ｱｲｳ0001']));
    set('storeCode', pick(['S001', 'S002', '']));
    set('terminalId', pick(['T1', 'T2', 'T3 X']));
    set('txnDate', pick(['20240601', '20240602']));
    set('slipNo', String(i % 1000).padStart(5, '0'));
    set('cardCompanyCode', pick(['001', '002']));
    set('paymentKind', pick(['1', '2']));
    set('txnType', pick(['10', '20', '30']));
    set('paymentMethod', pick(['10', '80']));
    set('amount', String(1 + Math.floor(rnd() * 99999)));
    set('approvalNo', pick(['', '1234567', '0000000']));
    set('maskedCardNo', pick(['411111******1111', '4111111111111111', ' 411111******1111', '12345', '****5678', '', '4111 1111 1111 1111']));
    out.push(rec);
  }
  return out;
}

test('81 rows and aggregates from bytes equal the decoded ones', async () => {
  const recs = records(3000);
  const amountOf = new TerminalAmount(layout);
  const agg = new TerminalAggregator(layout);
  const expectedAgg = new Map<string, number[]>();
  const f = (n: string) => layout.byName.get(n)!;
  for (const rec of recs) {
    const amount = amountOf.of(rec, 0);
    assert.equal(amount, Number(decodeField(rec, 0, f('amount'))));
    agg.add(rec, 0, amount);
    const key = ['merchantNo', 'storeCode', 'terminalId', 'txnDate', 'cardCompanyCode', 'paymentKind', 'paymentMethod'].map((n) => decodeField(rec, 0, f(n))).join('\t');
    const s = expectedAgg.get(key) ?? [0, 0, 0, 0, 0, 0];
    const t = decodeField(rec, 0, f('txnType'));
    const slot = t === '10' ? 0 : t === '20' ? 2 : 4;
    s[slot]! += 1;
    s[slot + 1]! += amount;
    expectedAgg.set(key, s);
  }
  assert.deepEqual(agg.rows('F1'), [...expectedAgg].map(([k, s]) => ['F1', ...k.split('\t'), ...s]));

  const t = await sqliteLedger();
  try {
    const sink = terminalSink(t.ledger, layout, 'F1');
    assert.ok(await sink.begin());
    recs.forEach((rec, i) => sink.addRecord(rec, 0, i + 2, amountOf.of(rec, 0)));
    await sink.finish(agg, recs.length);
    // the aggregates, cut by SQLite from the packed key bytes where they are text, decoded where not
    const aggRows = (await t.ledger.db('jm_aggregates').orderBy('id').select(...AGG_COLUMNS)) as Record<string, unknown>[];
    // the same rows (in index order, not first-occurrence order: no reader orders by id)
    const byKey = (rows: unknown[][]) => rows.map((r) => JSON.stringify(r)).sort();
    assert.deepEqual(byKey(aggRows.map((r) => AGG_COLUMNS.map((c) => r[c]))), byKey(agg.rows('F1')));
    assert.ok(agg.rows('F1').some((r) => String(r[1]).startsWith('ｱ')), 'some keys take the decoded path');
    // the transactions, packed and read back (by date, then record number here)
    const rows = (await terminalTxnsOfFile(t.ledger, 'F1')) as unknown as Record<string, unknown>[];
    assert.equal(rows.length, recs.length);
    recs.forEach((rec, i) => {
      const d = (n: string) => decodeField(rec, 0, f(n));
      const expected = ['F1', i + 2, d('merchantNo'), d('storeCode'), d('terminalId'), d('txnDate'), d('slipNo'), d('cardCompanyCode'), d('txnType'), Number(d('amount')), d('approvalNo'), maskCardNumber(d('maskedCardNo'))];
      assert.deepEqual(TXN_COLUMNS.map((c) => rows[i]![c]), expected, `record ${i}`);
    });
  } finally {
    await t.dispose();
  }
});
