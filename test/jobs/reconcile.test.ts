// The three reconciliations on SQLite and PostgreSQL, with every discrepancy planted by
// construction and everything else matching.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { loadTerminalFile } from '../../jobs/terminal.ts';
import { recordResults } from '../../jobs/sent-records.ts';
import { runReconciliation } from '../../jobs/reconcile/run.ts';
import { LEDGER_KINDS, type TestLedger } from '../helpers/ledgers.ts';
import { testCentre, txn, type TestCentre } from './jmanager-helpers.ts';

const DAY = '20240314';
const M1 = '100000000000001';
let ref = 1000;

for (const [kind, make] of LEDGER_KINDS) {
  describe(`reconcile on ${kind}`, () => {
    let t: TestLedger;
    let c: TestCentre;
    before(async () => {
      t = await make();
      c = await testCentre(t); // now: 2024-03-15 10:00 JST
    });
    after(async () => {
      await c.dispose();
      await t.dispose();
    });

    const outFile = async (id: string, partner: string, fileType: string, atIso: string, extra: Record<string, unknown> = {}) =>
      c.ctx.centre.files.create({
        id, partner_id: partner, direction: 'out', file_type: fileType, name: `${id}.dat`, path: null, size: null, sha256: null, sender_code: null, receiver_code: null,
        file_seq: null, business_date: null, record_count: null, accepted_count: null, rejected_count: null, amount_total: null, parent_id: null, state: 'sent', ...extra,
      }, 'test', 'test', Date.parse(atIso));
    const sent = async (fileId: string, over: Record<string, unknown>) => {
      const row = {
        centre_ref: ++ref, file_id: fileId, source_file_id: 'I31', card_company_code: '001', merchant_no: M1, terminal_id: 'T0001', slip_no: '00001',
        use_date: '20240313', txn_type: '10', amount: 1000, approval_no: '1234567', masked_card_no: '411111******1111', centre_date: '20240313', ...over,
      };
      await t.ledger.db('sent_records').insert(row);
      return String(row.centre_ref);
    };

    it('finds each planted discrepancy once, and nothing else', async () => {
      // 1. sent vs returned. cc1's deadline is 24 h.
      await outFile('O32-early', 'cc1', '32', '2024-03-13T00:00:00Z'); // deadline 03-14 09:00 JST: passed
      await outFile('O32-late', 'cc1', '32', '2024-03-14T10:00:00Z'); // deadline 03-15 19:00 JST: not yet
      await outFile('R33-1', 'cc1', '33', '2024-03-14T02:00:00Z'); // results received on the 14th (JST)
      await outFile('R33-2', 'cc1', '33', '2024-03-14T03:00:00Z');
      const missing = await sent('O32-early', { slip_no: '00101' });
      const ok = await sent('O32-early', { slip_no: '00102' });
      const twice = await sent('O32-early', { slip_no: '00103' });
      const wrongAmount = await sent('O32-early', { slip_no: '00104', amount: 5000 });
      await sent('O32-late', { slip_no: '00105' });
      await recordResults(t.ledger, 'R33-1', [
        { centreRef: ok.padStart(12, '0'), resultCode: '00', amount: 1000 },
        { centreRef: twice, resultCode: '00', amount: 1000 },
        { centreRef: wrongAmount, resultCode: '00', amount: 4000 },
        { centreRef: '000000999999', resultCode: '00', amount: 777, merchantNo: M1, terminalId: 'T0009', slipNo: '00999', useDate: '20240313', maskedCardNo: '411111******1111' },
      ], DAY);
      await recordResults(t.ledger, 'R33-1', [{ centreRef: ok, resultCode: '00', amount: 1000 }], DAY); // a retried route: not a duplicate
      await recordResults(t.ledger, 'R33-2', [{ centreRef: twice, resultCode: '00', amount: 1000 }], DAY);

      // 2. terminal vs sales on the 14th, terminal side from two 81 files.
      const d = { txnDate: DAY };
      const journal1 = [
        txn({ ...d, slipNo: '00001', amount: 1000, approvalNo: '1111111' }), // matches
        txn({ ...d, slipNo: '00002', amount: 2000, approvalNo: '2222222' }), // 31 says 2100
        txn({ ...d, slipNo: '00003', amount: 3000, approvalNo: '3333333' }), // 31 says 3333334
        txn({ ...d, slipNo: '00004', amount: 4000, approvalNo: '4444444' }), // never submitted
        txn({ ...d, slipNo: '00005', amount: 5000, approvalNo: '       ' }), // not authorised: not checked
        txn({ ...d, slipNo: '00006', amount: 6000, approvalNo: '6666666' }), // also in journal2: duplicate
        txn({ ...d, slipNo: '00008', amount: 8000, approvalNo: '8888888' }), // submitted twice: duplicate
        txn({ ...d, slipNo: '00009', amount: 9000, approvalNo: '0000000', terminalId: 'T0002' }), // offline: not checked
      ];
      await loadTerminalFile(c.ctx, await c.terminalFile('I81R000001', journal1, DAY));
      await loadTerminalFile(c.ctx, await c.terminalFile('I81R000002', [txn({ ...d, slipNo: '00006', amount: 6000, approvalNo: '6666666' })], DAY));
      const s = (slip: string, over: Record<string, unknown> = {}) => sent('O32-late', { use_date: DAY, centre_date: DAY, slip_no: slip, ...over });
      await s('00001', { amount: 1000, approval_no: '1111111' });
      await s('00002', { amount: 2100, approval_no: '2222222' });
      await s('00003', { amount: 3000, approval_no: '3333334' });
      await s('00006', { amount: 6000, approval_no: '6666666' });
      await s('00007', { amount: 7000, approval_no: '7777777' }); // no terminal transaction
      await s('00008', { amount: 8000, approval_no: '8888888' });
      await s('00008', { amount: 8000, approval_no: '8888888' });
      await s('00001', { merchant_no: '300000000000001', amount: 1 }); // a merchant the journal does not cover

      // 3. file totals: a file rejected for its trailer on the 14th.
      await c.ctx.centre.files.create({
        id: 'I31-bad', partner_id: 'ho-a', direction: 'in', file_type: '31', name: 'BAD.dat', path: null, size: null, sha256: null, sender_code: '1000000001', receiver_code: null,
        file_seq: '000077', business_date: DAY, record_count: 10, accepted_count: 0, rejected_count: 10, amount_total: null, parent_id: null, state: 'received',
      }, 'test', 'test', Date.parse('2024-03-14T05:00:00Z'));
      await c.ctx.centre.files.transition('I31-bad', 'received', 'rejected', 'rejected: 2 errors (E105,E106)');

      // An offline sale (no approval number) that was submitted: matched, not "no terminal transaction".
      await loadTerminalFile(c.ctx, await c.terminalFile('I81R000003', [txn({ ...d, slipNo: '00010', amount: 1500, approvalNo: '       ', terminalId: 'T0003' })], DAY));
      await s('00010', { terminal_id: 'T0003', amount: 1500, approval_no: '' });

      // Sent vs returned is filed under the day the 32 went out (the 13th), not the day the results came.
      const sentDay = await runReconciliation(c.ctx, '20240313');
      assert.deepEqual(
        Object.fromEntries(Object.entries(sentDay.counts).filter(([, n]) => n)),
        { 'missing result': 1, 'amount mismatch': 1, duplicate: 1 },
      );
      const sentCsv = (await readFile(sentDay.reportPath, 'utf8')).trim().split('\r\n').slice(1).map((l) => l.split(','));
      assert.equal(sentCsv.find((l) => l[0] === 'missing result')![8], missing);
      assert.equal(sentCsv.find((l) => l[0] === 'amount mismatch')![8], wrongAmount);
      assert.equal(sentCsv.find((l) => l[0] === 'duplicate')![8], twice);
      assert.deepEqual(sentDay.notRun, ['terminal vs sales: not run, no 81 terminal data for 20240313']);

      const summary = await runReconciliation(c.ctx, DAY);
      assert.deepEqual(summary.counts, {
        'missing result': 0, 'unexpected result': 1, 'amount mismatch': 1, 'never submitted': 1, 'no terminal transaction': 1,
        'approval-number mismatch': 1, duplicate: 2, 'file total mismatch': 1, 'bill without result': 0,
      });
      assert.deepEqual(summary.notRun, []);
      const csv = await readFile(summary.reportPath, 'utf8');
      assert.ok(csv.startsWith('\ufeffcategory,check,merchant_no,'));
      assert.doesNotMatch(csv, /4111111111111111/);
      const lines = csv.trim().split('\r\n').slice(1).map((l) => l.split(','));
      const find = (category: string, pred: (l: string[]) => boolean = () => true) => lines.filter((l) => l[0] === category && pred(l));
      assert.equal(find('unexpected result')[0]![8], '000000999999');
      assert.equal(find('amount mismatch', (l) => l[1] === '2')[0]![4], '00002');
      assert.equal(find('approval-number mismatch')[0]![4], '00003');
      assert.deepEqual([find('never submitted')[0]![4], find('never submitted')[0]![9]], ['00004', 'I81R000001']);
      assert.equal(find('no terminal transaction')[0]![4], '00007');
      assert.deepEqual(find('duplicate').map((l) => `${l[1]}:${l[4] || l[8]}`).sort(), ['2:00006', '2:00008']);
      assert.equal(find('file total mismatch')[0]![9], 'I31-bad');
      const run = await t.ledger.db('reconcile_runs').where({ report_date: DAY }).first();
      assert.equal(Number(run.discrepancies), 8);
      // A rerun replaces the summary rather than adding one.
      await runReconciliation(c.ctx, DAY);
      assert.equal((await t.ledger.db('reconcile_runs').where({ report_date: DAY })).length, 1);
    });

    it('a quiet day has an empty report (header only)', async () => {
      const summary = await runReconciliation(c.ctx, '20240201');
      assert.equal(summary.discrepancies, 0);
      assert.deepEqual(summary.notRun, ['terminal vs sales: not run, no 81 terminal data for 20240201']);
      assert.equal((await readFile(summary.reportPath, 'utf8')).trim().split('\r\n').length, 1);
    });
  });
}
