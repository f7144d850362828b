// Packed terminal transactions (terminal_batches) on SQLite and PostgreSQL: what reconciliation
// reads back is every transaction's decoded values in load order, across dates and parts; rows of
// terminal_txns written before migration 010 are read first; the purge removes both and counts them.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { blankRecord, decodeField, encodeField, familyForFileType, maskCardNumber, seededRandom } from '../../formats/index.ts';
import { hasTerminalTxns, purgeTerminalTxns, readTerminalDay, TerminalPacker, terminalTxnsOfFile, type TerminalPart } from '../../jobs/terminal/pack.ts';
import { TerminalAggregator, TerminalAmount, TXN_COLUMNS } from '../../jobs/terminal/rows.ts';
import { terminalSink } from '../../jobs/terminal/sink.ts';
import { LEDGER_KINDS, type TestLedger } from '../helpers/ledgers.ts';

const layout = familyForFileType('81')!.data;
const f = (n: string) => layout.byName.get(n)!;
const DATES = ['20240601', '20240602', '20240603'];

function records(n: number, seed: number): Buffer[] {
  const rnd = seededRandom(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]!;
  return Array.from({ length: n }, (_, i) => {
    const rec = blankRecord(layout);
    const set = (name: string, v: string) => encodeField(v, rec, 0, f(name));
    set('merchantNo', pick(['500000000000001', ' 5000002', 'ｱｲｳ0001', '']));
    set('storeCode', pick(['S001', '']));
    set('terminalId', pick(['T1', 'T3 X']));
    set('txnDate', pick(DATES));
    set('slipNo', String(i % 1000).padStart(5, '0'));
    set('cardCompanyCode', pick(['001', '002']));
    set('txnType', pick(['10', '20', '30']));
    set('amount', String(1 + Math.floor(rnd() * 9_999_999)));
    set('approvalNo', pick(['', '1234567']));
    set('maskedCardNo', pick(['411111******1111', '4111111111111111', ' 411111******1111', '12345', '']));
    return rec;
  });
}

/** What terminal_txns held for a record: the decoded values, the card number masked. */
const expectedRow = (fileId: string, rec: Buffer, recordNo: number) => {
  const d = (n: string) => decodeField(rec, 0, f(n));
  return [fileId, recordNo, d('merchantNo'), d('storeCode'), d('terminalId'), d('txnDate'), d('slipNo'), d('cardCompanyCode'), d('txnType'), Number(d('amount')), d('approvalNo'), maskCardNumber(d('maskedCardNo'))];
};

for (const [kind, make] of LEDGER_KINDS) {
  describe(`terminal batches on ${kind}`, () => {
    let t: TestLedger;
    before(async () => { t = await make(); });
    after(async () => { await t.dispose(); });

    it('reads back every transaction of a date in load order, over parts and files', async () => {
      const files = [['P1', records(200, 3)], ['P2', records(50, 4)]] as const;
      for (const [fileId, recs] of files) {
        const parts: TerminalPart[] = [];
        const packer = new TerminalPacker(layout, fileId, (p) => parts.push(p), 7); // parts of 7: many per date
        recs.forEach((rec, i) => packer.add(rec, 0, i + 2, Number(decodeField(rec, 0, f('amount')))));
        packer.finish();
        assert.ok(parts.length >= Math.ceil(recs.length / 7));
        for (const p of parts) await t.ledger.db('terminal_batches').insert(p);
      }
      for (const date of DATES) {
        const day = await readTerminalDay(t.ledger, date);
        const expected = files.flatMap(([fileId, recs]) => recs.map((rec, i) => expectedRow(fileId, rec, i + 2)).filter((r) => r[5] === date));
        const got = Array.from({ length: day.length }, (_, i) => { const r = day.row(i) as unknown as Record<string, unknown>; return TXN_COLUMNS.map((c) => r[c]); });
        assert.deepEqual(got, expected, date);
        assert.deepEqual(day.merchantNos, expected.map((r) => r[2]));
      }
      assert.equal((await terminalTxnsOfFile(t.ledger, 'P2')).length, 50);
    });

    it('loads through the sink in one transaction, once', async () => {
      const recs = records(300, 5);
      const amountOf = new TerminalAmount(layout);
      const load = async () => {
        const sink = terminalSink(t.ledger, layout, 'S1');
        if (!(await sink.begin())) return false;
        const agg = new TerminalAggregator(layout);
        recs.forEach((rec, i) => { const a = amountOf.of(rec, 0); sink.addRecord(rec, 0, i + 1, a); agg.add(rec, 0, a); });
        await sink.flush();
        await sink.finish(agg, recs.length);
        return true;
      };
      assert.equal(await load(), true);
      assert.equal(await load(), false);
      const got = (await terminalTxnsOfFile(t.ledger, 'S1')).map((r) => TXN_COLUMNS.map((c) => (r as unknown as Record<string, unknown>)[c]));
      assert.deepEqual(got, recs.map((rec, i) => expectedRow('S1', rec, i + 1)));
    });

    it('reads rows of terminal_txns first, and purges both', async () => {
      await t.ledger.db('terminal_txns').insert({ file_id: 'OLD', record_no: 9, merchant_no: 'M0', store_code: 'S', terminal_id: 'T', txn_date: '20240601', slip_no: '00001', card_company_code: '001', txn_type: '10', amount: 5, approval_no: '', masked_card_no: '' });
      await t.ledger.db('terminal_txns').insert({ file_id: 'OLD', record_no: 3, merchant_no: 'M0', store_code: 'S', terminal_id: 'T', txn_date: '20240531', slip_no: '00002', card_company_code: '001', txn_type: '10', amount: 6, approval_no: '', masked_card_no: '' });
      const day = await readTerminalDay(t.ledger, '20240601');
      assert.deepEqual([day.row(0).file_id, day.row(0).record_no, day.row(0).amount], ['OLD', 9, 5]);
      assert.ok(await hasTerminalTxns(t.ledger, '=', '20240531'));
      assert.ok(!(await hasTerminalTxns(t.ledger, '=', '20240530')));
      assert.ok(await hasTerminalTxns(t.ledger, '>=', '20240603'));
      const kept = (await readTerminalDay(t.ledger, '20240603')).length;
      const purged = (await readTerminalDay(t.ledger, '20240531')).length + (await readTerminalDay(t.ledger, '20240601')).length + (await readTerminalDay(t.ledger, '20240602')).length;
      assert.equal(await purgeTerminalTxns(t.ledger, '20240603'), purged);
      assert.equal(await purgeTerminalTxns(t.ledger, '20240603'), 0);
      assert.ok(!(await hasTerminalTxns(t.ledger, '=', '20240601')));
      assert.equal((await readTerminalDay(t.ledger, '20240603')).length, kept);
    });
  });
}
