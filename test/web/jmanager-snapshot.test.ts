// The Jmanager search snapshot (issue 16's cold search): it is kept when only another head
// office's aggregates were added, reloaded when the head office's own were (a page meanwhile gets
// the one before, marked stale; a download never does), reloaded
// after a purge, and the same figures come out of the raw SQLite load and PostgreSQL's; warm() and
// refresh() load ahead of the search. Real SQLite and PostgreSQL ledgers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JmanagerSnapshots } from '../../web/jmanager-snapshot.ts';
import { queryAggregates } from '../../jobs/jmanager/aggregates.ts';
import { purgeTerminalHistory } from '../../jobs/jmanager/aggregates.ts';
import { seedAggregates } from '../../scripts/lib/jmanager-seed.ts';
import { postgresLedger, sqliteLedger, type TestLedger } from '../helpers/ledgers.ts';

const HO = ['301000000000001', '301000000000002'];
const OTHER = ['302000000000001'];
const FROM = '20261001';
const TO = '20261030';
const row = (merchantNo: string, amount: number, date = '20261030') => ({ file_id: `late-${merchantNo}-${amount}`, merchant_no: merchantNo, store_code: 'S0001', terminal_id: 'T000101', business_date: date, card_company_code: '001', payment_kind: '1', payment_method: '10', sale_count: 1, sale_amount: amount, void_count: 0, void_amount: 0, return_count: 0, return_amount: 0 });

async function check(make: () => Promise<TestLedger>) {
  const { ledger, dispose } = await make();
  try {
    await seedAggregates(ledger, { merchantNos: HO, endDate: TO, days: 30, stores: 3, terminalsPerStore: 2, cardCompanies: ['001', '002'], seed: 5, filePrefix: 'I-ho' });
    await seedAggregates(ledger, { merchantNos: OTHER, endDate: TO, days: 30, stores: 1, terminalsPerStore: 1, cardCompanies: ['001'], seed: 6, filePrefix: 'I-other' });
    const snaps = new JmanagerSnapshots(ledger);
    await snaps.warm([{ id: 'ho', merchantNos: HO }], FROM, TO);
    const first = await snaps.get('ho', HO, FROM, TO);
    const expected = await queryAggregates(ledger, { merchantNos: HO, from: FROM, to: TO });
    assert.equal(first.length, expected.length);
    assert.deepEqual(Array.from({ length: first.length }, (_, i) => first.row(i)), expected, 'the snapshot holds the rows of the query, in 71 order');
    const total = (s: typeof first) => s.group(s.select({ merchantNos: HO, from: FROM, to: TO }), null).totals.sale_amount;

    await ledger.db('jm_aggregates').insert(row(OTHER[0]!, 777));
    assert.equal(await snaps.get('ho', HO, FROM, TO), first, "another head office's 81 keeps the snapshot");

    await ledger.db('jm_aggregates').insert(row(HO[1]!, 1234));
    const second = await snaps.get('ho', HO, FROM, TO);
    assert.notEqual(second, first, "the head office's own 81 reloads it");
    assert.equal(total(second), total(first) + 1234);

    await ledger.db('jm_aggregates').insert(row(HO[0]!, 55));
    await snaps.refresh(() => ({ from: FROM, to: TO }));
    const third = await snaps.get('ho', HO, FROM, TO);
    assert.notEqual(third, second, 'refresh() reloaded it ahead of the search');
    assert.equal(total(third), total(second) + 55);
    assert.equal(await snaps.get('ho', HO, FROM, TO), third);

    // A page asked while the head office's own new rows load: the snapshot before them at once,
    // marked stale; the caller reloads it (get) once the page is out. A download (get) never is stale.
    await ledger.db('jm_aggregates').insert(row(HO[0]!, 9));
    const page = await snaps.getForPage('ho', HO, FROM, TO);
    assert.equal(page.stale, true, 'the page is answered from the snapshot before the load');
    assert.equal(page.snapshot, third);
    assert.equal((await snaps.getForPage('ho', HO, FROM, TO)).stale, true, 'until the caller reloads it');
    const fresh = await snaps.get('ho', HO, FROM, TO);
    assert.equal(total(fresh), total(third) + 9, 'get() waits for the reload');
    assert.deepEqual(await snaps.getForPage('ho', HO, FROM, TO), { snapshot: fresh, stale: false });
    const cold = new JmanagerSnapshots(ledger);
    assert.equal((await cold.getForPage('ho', HO, FROM, TO)).stale, false, 'with nothing cached the page waits for the load');

    await purgeTerminalHistory(ledger, '20261002');
    const fourth = await snaps.get('ho', HO, FROM, TO);
    assert.notEqual(fourth, third, 'a purge reloads it');
    assert.equal(fourth.length, (await queryAggregates(ledger, { merchantNos: HO, from: FROM, to: TO })).length);
  } finally {
    await dispose();
  }
}

test('jmanager snapshot: SQLite', () => check(sqliteLedger));
test('jmanager snapshot: PostgreSQL', () => check(postgresLedger));
