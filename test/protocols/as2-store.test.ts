// The AS2 ledger tables on SQLite and PostgreSQL: dedupe by (partner, Message-ID) under concurrent
// writes sharing one commit (a failing write fails alone), pending messages, an operator resend.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LEDGER_KINDS } from '../helpers/ledgers.ts';
import { As2Store, supersedePendingAs2 } from '../../protocols/as2/store.ts';

for (const [kind, open] of LEDGER_KINDS) {
  describe(`AS2 store on ${kind}`, () => {
    test('dedupe under group commit, sent rows, resend supersedes pending', async () => {
      const t = await open();
      try {
        const store = new As2Store(t.ledger);
        const row = (id: string) => ({ partner_id: 'p', message_id: id, file_name: 'f.dat', temp_path: '/tmp/x', final_path: '/tmp/y', size: 1 });
        // Ten concurrent stages, two of them twins: one commit, the twins' second insert fails alone.
        const results = await Promise.all([...Array.from({ length: 8 }, (_, i) => store.stage(row(`<m${i}@x>`), { detail: 'd' })), store.stage(row('<twin@x>')), store.stage(row('<twin@x>'))]);
        assert.deepEqual(results.slice(0, 8), Array(8).fill(true));
        assert.deepEqual(results.slice(8).sort(), [false, true]);
        assert.equal((await t.ledger.db('as2_received')).length, 9);
        assert.equal((await t.ledger.db('audit').where({ protocol: 'as2', event: 'upload' })).length, 8);
        assert.equal(await store.updateReceived('p', '<m1@x>', { state: 'landed' }, { state: 'staged' }), true);
        assert.equal(await store.updateReceived('p', '<m1@x>', { state: 'landed' }, { state: 'staged' }), false);
        assert.equal((await store.received('p', '<m1@x>'))!.state, 'landed');

        await store.insertSent({ message_id: '<s1@us>', partner_id: 'p', remote_name: 'OUT.dat', payload_sha256: 'a'.repeat(64), mdn_mode: 'async', mics: { sha256: 'x' }, mic_prefix: null, payload_path: null });
        assert.equal(await store.updateSent('<s1@us>', { state: 'awaiting', deadline_at: Date.now() }, ['sending']), true);
        assert.equal((await store.latestSent('p', 'a'.repeat(64), 'OUT.dat'))!.message_id, '<s1@us>');
        await supersedePendingAs2(t.ledger, 'p', 'OUT.dat');
        assert.equal((await store.sent('<s1@us>'))!.state, 'failed');
      } finally {
        await t.dispose();
      }
    });
  });
}
