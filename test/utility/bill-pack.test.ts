// Packed bills (jobs/utility/bill-pack.ts): parts written as the bills come and in the publishing
// transaction, materialized into exactly the utility_bills rows the route used to write (a second
// materialization or a retried part changes nothing), pending keys of other files, and the
// within-file duplicate hashes. SQLite and PostgreSQL.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { blankRecord, encodeField, getLayout } from '../../formats/index.ts';
import { writeTransaction } from '../../spool/ledger/index.ts';
import { BillBatchWriter, BillKeys, KeyHashes, materializeUtilityBills, pendingBillKeys } from '../../jobs/utility/bill-pack.ts';
import { LEDGER_KINDS } from '../helpers/ledgers.ts';

const billing = getLayout('billing.data');
const f = (n: string) => billing.byName.get(n)!;

function bill(customerNo: string, billNo: string, amount: number, month = '202611'): Buffer {
  const rec = blankRecord(billing);
  for (const [k, v] of Object.entries({ customerNo, billingMonth: month, billingKind: '1', amount: String(amount), useDate: `${month}26`, billNo })) encodeField(v, rec, 0, f(k));
  return rec;
}

describe('packed utility bills', () => {
  for (const [kind, open] of LEDGER_KINDS) {
    it(`parts become the utility_bills rows, once (${kind})`, async () => {
      const { ledger, dispose } = await open();
      try {
        const n = 20_000; // more than one part (16,384)
        const w = new BillBatchWriter(ledger, 'F23', 'u1');
        const last4 = Buffer.from('1234');
        for (let i = 0; i < n; i++) w.add(bill(`K${i}`, `B${i}`, 100 + i), 0, Buffer.from(i % 2 ? '002' : '001'), last4, 0, i + 2, 5000 + i);
        await w.settle();
        assert.equal(Number(((await ledger.db('utility_bill_batches').count({ n: '*' }))[0] as { n: number }).n), 1, 'the first part is written as the bills come');
        await writeTransaction(ledger, (trx) => w.finish(trx));
        // a retry packs the same parts again: ignored
        const again = new BillBatchWriter(ledger, 'F23', 'u1');
        for (let i = 0; i < n; i++) again.add(bill(`K${i}`, `B${i}`, 100 + i), 0, Buffer.from(i % 2 ? '002' : '001'), last4, 0, i + 2, 5000 + i);
        await writeTransaction(ledger, (trx) => again.finish(trx));
        assert.equal(Number(((await ledger.db('utility_bill_batches').count({ n: '*' }))[0] as { n: number }).n), 2);

        // another file's check sees these keys before they are materialized
        const keys = new BillKeys();
        await pendingBillKeys(ledger, 'u1', 'OTHER', keys);
        assert.equal(keys.size, n);
        const probe = bill('K9', 'B19999', 1);
        assert.ok(keys.has(probe, f('billingMonth').offset, f('billNo').offset));
        assert.ok(!keys.has(bill('K9', 'B20000', 1), f('billingMonth').offset, f('billNo').offset));
        const own = new BillKeys();
        await pendingBillKeys(ledger, 'u1', 'F23', own);
        assert.equal(own.size, 0, 'a file does not see its own parts as another file\'s bills');

        assert.equal(await materializeUtilityBills(ledger), n);
        assert.equal(await materializeUtilityBills(ledger), 0);
        const rows = (await ledger.db('utility_bills').orderBy('centre_ref')) as Record<string, unknown>[];
        assert.equal(rows.length, n);
        const r = rows[19_999]!;
        assert.deepEqual(
          [r.partner_id, r.billing_month, r.bill_no, r.customer_no, Number(r.amount), r.use_date, r.source_file_id, Number(r.centre_ref), r.card_company_code, r.card_last4, Number(r.source_record_no), r.answer_file_id],
          ['u1', '202611', 'B19999', 'K19999', 100 + 19_999, '20261126', 'F23', 5000 + 19_999, '002', '1234', 20_001, null],
        );
        assert.equal(Number(((await ledger.db('utility_bill_batches').count({ n: '*' }))[0] as { n: number }).n), 0);
      } finally {
        await dispose();
      }
    });
  }

  it('refuses a centreRef that does not follow the one before', () => {
    const w = new BillBatchWriter(undefined as never, 'F', 'u');
    w.add(bill('K1', 'B1', 1), 0, Buffer.from('001'), Buffer.from('0000'), 0, 2, 10);
    assert.throws(() => w.add(bill('K2', 'B2', 1), 0, Buffer.from('001'), Buffer.from('0000'), 0, 3, 12), /does not follow/);
  });

  it('KeyHashes keeps exactly the repeated hashes; BillKeys grows and finds every key', () => {
    const hashes = new KeyHashes();
    const keys = new BillKeys(4);
    const m = f('billingMonth').offset, b = f('billNo').offset;
    for (let i = 0; i < 100_000; i++) {
      const rec = bill('K', `B${i}`, 1);
      hashes.add(rec, m, b);
      assert.ok(keys.add(rec, m, b));
    }
    hashes.add(bill('K', 'B77', 1), m, b);
    hashes.add(bill('K', 'B77', 1, '202612'), m, b); // same bill number, another month: another key
    const repeated = hashes.repeated();
    assert.ok(repeated.has(BillKeys.hash(bill('K', 'B77', 1), m, b)));
    assert.ok(!repeated.has(BillKeys.hash(bill('K', 'B78', 1), m, b)) || repeated.size > 1);
    assert.ok(repeated.size < 20, `${repeated.size} repeated hashes among 100,000 distinct keys`);
    assert.equal(keys.size, 100_000);
    assert.ok(!keys.add(bill('K', 'B5', 1), m, b), 'a key added twice');
    assert.ok(keys.add(bill('K', 'B5', 1, '202612'), m, b));
  });
});
