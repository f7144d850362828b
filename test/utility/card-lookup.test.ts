// The customer lookup of billing (jobs/utility/card-lookup.ts): the lookup thread and the job's
// thread give the same answer for every kind of customer (not registered, deleted, invalid, with a
// card under either of two data keys), write the same audit rows before opening, and refuse an
// entry moved to another customer with a VaultError; on PostgreSQL the lookup stays in the thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { KeyRing, kekFromBytes } from '../../spool/keys.ts';
import { Vault, VaultError } from '../../spool/vault/vault.ts';
import { openCardLookup, CARD_OPENED, NO_CARD, NOT_REGISTERED, type CardsOfBatch } from '../../jobs/utility/card-lookup.ts';
import { LEDGER_KINDS } from '../helpers/ledgers.ts';

const AUDIT = { job: 'route', fileId: 'F23', partnerId: 'u1', purpose: 'test lookup' };
const cardNo = (i: number) => `41111100000${String(i).padStart(5, '0')}`;

/** What a batch says, with the numbers read out (the test's own copy; the lookup's buffer is wiped). */
function readOut(r: CardsOfBatch): unknown {
  const cards = Array.from(r.billOf, (bill, k) => [bill, r.companies[k], r.cards.plain.toString('latin1', r.cards.start[k]!, r.cards.bar[k]!), r.cards.plain.toString('latin1', r.cards.bar[k]! + 1, r.cards.end[k]!)]);
  return { status: [...r.status], cards };
}

for (const [kind, make] of LEDGER_KINDS) {
  test(`card lookup on ${kind}: the lookup thread answers as the job's thread does, audited before opening`, async () => {
    const { ledger, dispose } = await make();
    try {
      const ring = new KeyRing(kekFromBytes(randomBytes(32)));
      const vault = await Vault.open(ledger, ring);
      const at = Date.now();
      const row = (no: string, state: string, sealed?: { enc: string; keyId: string }, company = '001') => ({
        partner_id: 'u1', customer_no: no, state, card_company_code: company, card_hmac: null, card_enc: sealed?.enc ?? null, key_id: sealed?.keyId ?? null,
        masked_card_no: null, card_last4: null, since: at, updated_at: at,
      });
      const rows = [];
      for (let i = 0; i < 40; i++) rows.push(row(`K${String(i).padStart(4, '0')}`, 'active', vault.seal('u1', `K${String(i).padStart(4, '0')}`, { cardNo: cardNo(i), expiry: '3012' }), i % 2 ? '002' : '001'));
      rows.push(row('K0900', 'deleted'), row('K0901', 'invalid', vault.seal('u1', 'K0901', { cardNo: cardNo(901), expiry: '3012' })));
      await ledger.db('utility_customers').insert(rows);
      // a customer of another utility with the same number is not this one's
      await ledger.db('utility_customers').insert({ ...row('K0950', 'active', vault.seal('u2', 'K0950', { cardNo: cardNo(950), expiry: '3012' })), partner_id: 'u2' });
      const batch = ['K0003', 'K0900', 'K0950', 'K0001', 'K0901', 'K0003', 'NOPE', 'K0039'];

      const inThread = await openCardLookup(ledger, vault, 'u1', AUDIT, batch.length, Infinity);
      const threaded = await openCardLookup(ledger, vault, 'u1', AUDIT, batch.length, 0);
      assert.equal(inThread.threaded, false);
      assert.equal(threaded.threaded, kind === 'sqlite');
      try {
        const a = await inThread.lookup(batch);
        const b = await threaded.lookup(batch);
        const expected = {
          status: [CARD_OPENED, NO_CARD, NOT_REGISTERED, CARD_OPENED, NO_CARD, CARD_OPENED, NOT_REGISTERED, CARD_OPENED],
          cards: [[0, '002', cardNo(3), '3012'], [3, '002', cardNo(1), '3012'], [5, '002', cardNo(3), '3012'], [7, '002', cardNo(39), '3012']],
        };
        assert.deepEqual(readOut(a), expected);
        assert.deepEqual(readOut(b), expected);
        a.cards.wipe();
        b.cards.wipe();
        assert.ok(b.cards.plain.every((x) => x === 0), 'wiped');
        const audit = await ledger.db('vault_audit').orderBy('id').select('job', 'file_id', 'partner_id', 'count', 'purpose');
        assert.deepEqual(audit.map((r: { count: number | string }) => ({ ...r, count: Number(r.count) })), [0, 1].map(() => ({ job: AUDIT.job, file_id: AUDIT.fileId, partner_id: AUDIT.partnerId, count: 4, purpose: AUDIT.purpose })));

        // an entry moved onto another customer does not open, in either thread, and the batch is still audited first
        const k5 = await ledger.db('utility_customers').where({ partner_id: 'u1', customer_no: 'K0005' }).first('card_enc');
        await ledger.db('utility_customers').where({ partner_id: 'u1', customer_no: 'K0006' }).update({ card_enc: k5.card_enc });
        await assert.rejects(inThread.lookup(['K0006']), VaultError);
        await assert.rejects(threaded.lookup(['K0006', 'K0007']), VaultError);
        assert.deepEqual((await ledger.db('vault_audit').orderBy('id').select('count')).map((r: { count: number | string }) => Number(r.count)), [4, 4, 1, 2]);
        // the thread goes on after a refused batch
        assert.deepEqual(readOut(await threaded.lookup(['K0007'])), { status: [CARD_OPENED], cards: [[0, '002', cardNo(7), '3012']] });
      } finally {
        await inThread.close();
        await threaded.close();
      }
    } finally {
      await dispose();
    }
  });
}
