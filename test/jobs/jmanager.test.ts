// Loading 81 files and building 71 files, on SQLite and PostgreSQL, with aggregates known by
// construction; plus the property that over any period the store-total rows sum to the input.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openSource, seededRandom, snapshotFields, streamCanonical, validateFile } from '../../formats/index.ts';
import { loadTerminalFile } from '../../jobs/terminal.ts';
import { terminalTxnsOfFile } from '../../jobs/terminal/pack.ts';
import { buildDueJmanagerFiles, buildJmanagerFile } from '../../jobs/jmanager/build.ts';
import { queryAggregates } from '../../jobs/jmanager/aggregates.ts';
import { addDays } from '../../jobs/jmanager/periods.ts';
import { purgeArchive } from '../../jobs/handlers/purge.ts';
import type { TerminalRecord } from '../../scripts/lib/terminal-file.ts';
import { LEDGER_KINDS, type TestLedger } from '../helpers/ledgers.ts';
import { testCentre, txn, type TestCentre } from './jmanager-helpers.ts';

async function read71(path: string) {
  const src = await openSource(path, {});
  const out = { header: {} as Record<string, string>, rows: [] as Record<string, string>[], trailer: {} as Record<string, string>, end: 0 };
  await streamCanonical(src, (rec, off, _n, type, layout) => {
    const f = snapshotFields(layout!, rec, off);
    if (type === '1') out.header = f;
    else if (type === '2') out.rows.push(f);
    else if (type === '8') out.trailer = f;
    else if (type === '9') out.end++;
  });
  return out;
}

for (const [kind, make] of LEDGER_KINDS) {
  describe(`jmanager on ${kind}`, () => {
    let t: TestLedger;
    let c: TestCentre;
    before(async () => {
      t = await make();
      c = await testCentre(t);
    });
    after(async () => {
      await c.dispose();
      await t.dispose();
    });

    it('loads an 81 file once, however often it is retried, with masked card numbers only', async () => {
      const records = [
        txn({ slipNo: '00001', amount: 1000 }),
        txn({ slipNo: '00002', amount: 2500 }),
        txn({ slipNo: '00003', amount: 700, txnType: '20' }),
        txn({ slipNo: '00004', amount: 300, txnType: '30' }),
        txn({ slipNo: '00005', amount: 5000, terminalId: 'T0002' }),
        txn({ slipNo: '00006', amount: 9000, storeCode: 'ST02', terminalId: 'T0201', txnDate: '20240302', paymentKind: '2' }),
        txn({ slipNo: '00007', amount: 111, merchantNo: '200000000000001', storeCode: 'B01', terminalId: 'B0001', txnDate: '20240229' }),
      ];
      const file = await c.terminalFile('I81A000001', records);
      assert.equal(await loadTerminalFile(c.ctx, file), 7);
      assert.equal(await loadTerminalFile(c.ctx, file), 7);
      await Promise.all([loadTerminalFile(c.ctx, file), loadTerminalFile(c.ctx, file)]);
      const txns = await terminalTxnsOfFile(t.ledger, file.id);
      assert.equal(txns.length, 7);
      assert.deepEqual(txns.map((x) => x.slip_no), ['00001', '00002', '00003', '00004', '00005', '00006', '00007']);
      const cards = txns.map((x) => x.masked_card_no);
      assert.ok(cards.every((x) => x === '411111******1111'), cards.join());
      const rows = await queryAggregates(t.ledger, { merchantNos: ['100000000000001'], from: '20240301', to: '20240301' });
      const t1 = rows.find((r) => r.terminal_id === 'T0001')!;
      assert.deepEqual([t1.sale_count, t1.sale_amount, t1.void_count, t1.void_amount, t1.return_count, t1.return_amount], [2, 3500, 1, 700, 1, 300]);
    });

    it('builds the D file: terminal rows, store totals, trailer, header period and cycle', async () => {
      const built = await buildJmanagerFile(c.ctx, c.ctx.centre.partner('ho-a'), { cycle: 'D', from: '20240301', to: '20240301' });
      assert.equal(built.created, true);
      const f = await read71((await c.ctx.centre.files.require(built.fileId)).path!);
      assert.deepEqual([f.header.fileType, f.header.cycle, f.header.periodFrom, f.header.periodTo, f.header.receiverCode], ['71', 'D', '20240301', '20240301', '1000000001']);
      const summary = f.rows.map((r) => `${r.storeCode}|${r.terminalId}|${r.saleCount}|${r.saleAmount}|${r.voidAmount}|${r.returnAmount}|${r.netSign}${r.netAmount}`);
      assert.deepEqual(summary, [
        'ST01|T0001|0000002|000000003500|000000000700|000000000300|+000000002500',
        'ST01|T0002|0000001|000000005000|000000000000|000000000000|+000000005000',
        'ST01||0000003|000000008500|000000000700|000000000300|+000000007500',
      ]);
      assert.equal(f.end, 1);
      const report = await validateFile((await c.ctx.centre.files.require(built.fileId)).path!, { policy: 'record' });
      assert.equal(report.errorCount, 0, JSON.stringify(report.errors));
    });

    it('publishes each (partner, cycle, period) once, and asks for its delivery', async () => {
      const ctx = { ...c.ctx, now: () => new Date('2024-03-16T01:00:00Z') }; // run on the 16th (a future run date is refused)
      // The journal here ends before the 15th: without force, only February's 71s would be due.
      assert.deepEqual((await buildDueJmanagerFiles(ctx, '20240316')).map((b) => `${b.partnerId} ${b.period.cycle}`), ['ho-a M', 'ho-b M']);
      const first = await buildDueJmanagerFiles(ctx, '20240316', { force: true });
      const again = await buildDueJmanagerFiles(ctx, '20240316', { force: true });
      assert.deepEqual(first.map((b) => `${b.partnerId} ${b.period.cycle} ${b.period.from}-${b.period.to}`), [
        'ho-a D 20240315-20240315', 'ho-a F 20240311-20240315', 'ho-a H 20240301-20240315', 'ho-a M 20240201-20240229', 'ho-b M 20240201-20240229',
      ]);
      assert.ok(first.every((b) => b.created || b.period.cycle === 'M'));
      assert.ok(again.every((b) => !b.created));
      assert.deepEqual(again.map((b) => b.fileId), first.map((b) => b.fileId));
      const rows = await t.ledger.db('files').where({ file_type: '71' }).select('id', 'file_seq');
      assert.equal(rows.length, 6); // five here and the D file of the test before
      assert.equal(new Set(rows.map((r) => r.file_seq)).size, 5); // ho-b has its own sequence
      assert.ok(first.every((b) => c.enqueued.some((r) => r.kind === 'deliver' && r.input.fileId === b.fileId)));
      // ho-b's February: one record of 29 Feb (leap year), in its own framing (lf)
      const hob = await read71((await c.ctx.centre.files.require(first[4]!.fileId)).path!);
      assert.deepEqual(hob.rows.map((r) => `${r.businessDate} ${r.terminalId || 'total'} ${Number(r.saleAmount)}`), ['20240229 B0001 111', '20240229 total 111']);
    });

    it('a period without transactions still gets header, trailer and end', async () => {
      const built = await buildJmanagerFile(c.ctx, c.ctx.centre.partner('ho-a'), { cycle: 'M', from: '20230201', to: '20230228' });
      const f = await read71((await c.ctx.centre.files.require(built.fileId)).path!);
      assert.equal(f.rows.length, 0);
      assert.equal(Number(f.trailer.rowCount), 0);
      assert.equal(f.end, 1);
      assert.deepEqual([f.header.periodFrom, f.header.periodTo, f.header.cycle], ['20230201', '20230228', 'M']);
    });

    it('property: over any period the store-total rows sum to the 81 input', async () => {
      const rnd = seededRandom(kind === 'sqlite' ? 7 : 8);
      const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]!;
      const days = Array.from({ length: 60 }, (_, i) => addDays('20240101', i));
      const records: TerminalRecord[] = [];
      for (let i = 0; i < 3000; i++) {
        const store = pick(['S1', 'S2', 'S3']);
        records.push(txn({
          merchantNo: pick(['100000000000001', '100000000000002']), storeCode: store, terminalId: `${store}T${pick(['1', '2', '3'])}`, txnDate: pick(days),
          slipNo: String(i + 1).padStart(5, '0'), cardCompanyCode: pick(['001', '002', '003']), paymentKind: pick(['1', '2', '3', '4']),
          txnType: pick(['10', '10', '10', '20', '30']), paymentMethod: pick(['10', '80']), amount: 1 + Math.floor(rnd() * 100000),
        }));
      }
      // Two files, so that aggregates of one key come from both.
      await loadTerminalFile(c.ctx, await c.terminalFile('I81P000001', records.slice(0, 1700), '20240301'));
      await loadTerminalFile(c.ctx, await c.terminalFile('I81P000002', records.slice(1700), '20240301'));
      for (let trial = 0; trial < 12; trial++) {
        const a = pick(days);
        const b = pick(days);
        const [from, to] = a <= b ? [a, b] : [b, a];
        const built = await buildJmanagerFile(c.ctx, c.ctx.centre.partner('ho-a'), { cycle: 'D', from, to });
        const f = await read71((await c.ctx.centre.files.require(built.fileId)).path!);
        const totals = f.rows.filter((r) => r.terminalId === '');
        const terminals = f.rows.filter((r) => r.terminalId !== '');
        const want = [0, 0, 0, 0, 0, 0];
        for (const r of records.filter((x) => x.txnDate >= from && x.txnDate <= to)) {
          const slot = r.txnType === '10' ? 0 : r.txnType === '20' ? 2 : 4;
          want[slot]!++;
          want[slot + 1]! += r.amount;
        }
        const sum = (rows: Record<string, string>[]) => ['saleCount', 'saleAmount', 'voidCount', 'voidAmount', 'returnCount', 'returnAmount'].map((k) => rows.reduce((s, r) => s + Number(r[k]), 0));
        assert.deepEqual(sum(totals), want, `${from}-${to} store totals`);
        assert.deepEqual(sum(terminals), want, `${from}-${to} terminal rows`);
        // The trailer counts each transaction once, not again through the store totals.
        const t = f.trailer;
        assert.deepEqual(['saleCountTotal', 'saleAmountTotal', 'voidCountTotal', 'voidAmountTotal', 'returnCountTotal', 'returnAmountTotal'].map((k) => Number(t[k])), want, `${from}-${to} trailer`);
        assert.equal(Number(t.rowCount), f.rows.length);
        for (const r of f.rows) {
          const net = Number(r.saleAmount) - Number(r.voidAmount) - Number(r.returnAmount);
          assert.equal(`${r.netSign}${Number(r.netAmount)}`, `${net < 0 ? '-' : '+'}${Math.abs(net)}`);
        }
      }
    });

    it('answers queries by store, terminal and card company, and purges past the retention', async () => {
      const all = await queryAggregates(t.ledger, { merchantNos: ['100000000000001', '100000000000002'], from: '20240101', to: '20240229' });
      const s1 = await queryAggregates(t.ledger, { merchantNos: ['100000000000001', '100000000000002'], from: '20240101', to: '20240229', store: 'S1', cardCompany: '002' });
      assert.ok(s1.length > 0 && s1.length < all.length);
      assert.ok(s1.every((r) => r.store_code === 'S1' && r.card_company_code === '002'));
      const term = await queryAggregates(t.ledger, { merchantNos: ['100000000000001', '100000000000002'], from: '20240101', to: '20240229', terminal: 'S2T1' });
      assert.ok(term.length > 0 && term.every((r) => r.terminal_id === 'S2T1'));
      // Now is 2024-03-15; 90 days back is 2023-12-16, so nothing goes yet; at 2024-05-01 January does.
      const none = await purgeArchive(c.ctx);
      assert.equal(none.aggregates, 0);
      const later = await purgeArchive(c.ctx, Date.parse('2024-05-01T00:00:00Z'));
      assert.ok(later.aggregates > 0 && later.transactions > 0);
      const left = await queryAggregates(t.ledger, { merchantNos: ['100000000000001', '100000000000002'], from: '20240101', to: '20240131' });
      assert.equal(left.length, 0);
      const kept = await queryAggregates(t.ledger, { merchantNos: ['100000000000001', '100000000000002'], from: '20240202', to: '20240229' });
      assert.ok(kept.length > 0);
    });
  });
}
