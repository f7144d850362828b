// The same ledger suite on SQLite and on PostgreSQL.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LEDGER_KINDS, type TestLedger } from '../helpers/ledgers.ts';
import { FilesRepository, StateConflictError, isUniqueViolation, reserveSequence, recordAudit, listAudit, migrateToLatest } from '../../spool/ledger/index.ts';

for (const [kind, make] of LEDGER_KINDS) {
  describe(`ledger on ${kind}`, () => {
    let t: TestLedger;
    let files: FilesRepository;
    before(async () => {
      t = await make();
      files = new FilesRepository(t.ledger);
    });
    after(async () => t.dispose());

    const base = {
      partner_id: 'm001',
      direction: 'in' as const,
      file_type: '31',
      name: 'sales.dat',
      path: '/spool/work/x',
      size: 1000,
      sha256: 'a'.repeat(64),
      sender_code: '1000000001',
      receiver_code: '0000000001',
      file_seq: '000001',
      business_date: '20261126',
      record_count: null,
      accepted_count: null,
      rejected_count: null,
      amount_total: null,
      parent_id: null,
      state: 'received' as const,
    };

    it('migrations are idempotent', async () => {
      assert.deepEqual(await migrateToLatest(t.ledger), []);
    });

    it('creates a file once and records its first transition', async () => {
      assert.equal(await files.create({ ...base, id: 'I1' }, 'landed'), true);
      assert.equal(await files.create({ ...base, id: 'I1' }, 'landed again'), false);
      const row = await files.require('I1');
      assert.equal(row.state, 'received');
      assert.equal(row.size, 1000);
      assert.equal(typeof row.created_at, 'number');
      const history = await files.history('I1');
      assert.equal(history.length, 1);
      assert.equal(history[0]!.from_state, null);
      assert.equal(history[0]!.to_state, 'received');
    });

    it('state changes are compare-and-set and append-only', async () => {
      await files.transition('I1', 'received', 'accepted', 'valid', { record_count: 10, accepted_count: 10, rejected_count: 0, amount_total: 12345678901 });
      await assert.rejects(files.transition('I1', 'received', 'rejected', 'late racer'), (err: unknown) => {
        assert.ok(err instanceof StateConflictError);
        assert.equal(err.actual, 'accepted');
        return true;
      });
      // An illegal move is refused even from the right state.
      await assert.rejects(files.transition('I1', 'accepted', 'sent', 'nonsense'), StateConflictError);
      const row = await files.require('I1');
      assert.equal(row.state, 'accepted');
      assert.equal(row.amount_total, 12345678901);
      const history = await files.history('I1');
      assert.deepEqual(
        history.map((h) => [h.from_state, h.to_state]),
        [
          [null, 'received'],
          ['received', 'accepted'],
        ],
      );
    });

    it('concurrent transitions from the same state: exactly one wins', async () => {
      await files.create({ ...base, id: 'I2', sha256: 'b'.repeat(64), file_seq: '000002' }, 'landed');
      const results = await Promise.allSettled([
        files.transition('I2', 'received', 'accepted', 'worker a'),
        files.transition('I2', 'received', 'rejected', 'worker b'),
        files.transition('I2', 'received', 'accepted', 'worker c'),
      ]);
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      assert.equal((await files.history('I2')).length, 2);
    });

    it('finds duplicates by sender, type and sequence, or by bytes', async () => {
      await files.create({ ...base, id: 'I3', sha256: 'c'.repeat(64), file_seq: '000001' }, 'landed');
      const bySeq = await files.findDuplicate({ id: 'I3', senderCode: '1000000001', fileType: '31', fileSeq: '000001', sha256: 'c'.repeat(64) });
      assert.equal(bySeq?.id, 'I1');
      const byBytes = await files.findDuplicate({ id: 'I3', senderCode: '1000000009', fileType: '31', fileSeq: '000099', sha256: 'a'.repeat(64) });
      assert.equal(byBytes?.id, 'I1');
      const none = await files.findDuplicate({ id: 'I3', senderCode: '1000000009', fileType: '31', fileSeq: '000099', sha256: 'd'.repeat(64) });
      assert.equal(none, undefined);
    });

    it('lists by partner, state and time', async () => {
      const all = await files.list({ partnerId: 'm001' });
      assert.deepEqual(all.map((f) => f.id).sort(), ['I1', 'I2', 'I3']);
      assert.deepEqual((await files.list({ state: 'received' })).map((f) => f.id), ['I3']);
      assert.equal((await files.list({ fromMs: Date.now() + 60_000 })).length, 0);
    });

    it('reserves sequence blocks without overlap under concurrency', async () => {
      const starts = await Promise.all(Array.from({ length: 8 }, () => reserveSequence(t.ledger, 'centreRef', 100)));
      const sorted = starts.map(Number).sort((a, b) => a - b);
      assert.equal(sorted[0], 1);
      for (let i = 1; i < sorted.length; i++) assert.equal(sorted[i]! - sorted[i - 1]!, 100);
      assert.equal(await reserveSequence(t.ledger, 'other', 1), 1n);
    });

    it('keeps an audit trail', async () => {
      await recordAudit(t.ledger, { partnerId: 'm001', protocol: 'sftp', event: 'login_refused', remote: '127.0.0.1', detail: 'bad key' });
      await recordAudit(t.ledger, { partnerId: 'm001', protocol: 'sftp', event: 'upload', detail: 'sales.dat' });
      const rows = await listAudit(t.ledger, { partnerId: 'm001' });
      assert.deepEqual(rows.map((r) => r.event), ['login_refused', 'upload']);
    });
  });
}

for (const [kind, make] of LEDGER_KINDS) {
  describe(`duplicate guard on ${kind}`, () => {
    it('two files with the same sender, type and sequence cannot both be accepted', async () => {
      const t = await make();
      try {
        const files = new FilesRepository(t.ledger);
        const row = (id: string, sha: string) => ({
          id, partner_id: 'm001', direction: 'in' as const, file_type: '31', name: `${id}.dat`, path: null, size: 1, sha256: sha,
          sender_code: '1000000001', receiver_code: null, file_seq: '000007', business_date: null, record_count: null,
          accepted_count: null, rejected_count: null, amount_total: null, parent_id: null, state: 'received' as const,
        });
        await files.create(row('A', '1'.repeat(64)), 'landed');
        await files.create(row('B', '2'.repeat(64)), 'landed');
        const results = await Promise.allSettled([files.transition('A', 'received', 'accepted', 'ok'), files.transition('B', 'received', 'accepted', 'ok')]);
        const refused = results.filter((r) => r.status === 'rejected');
        assert.equal(refused.length, 1);
        assert.ok(isUniqueViolation((refused[0] as PromiseRejectedResult).reason));
        // The loser can still be rejected.
        const loser = results[0]!.status === 'rejected' ? 'A' : 'B';
        await files.transition(loser, 'received', 'rejected', 'E108');
        assert.equal((await files.require(loser)).state, 'rejected');
      } finally {
        await t.dispose();
      }
    });
  });
}
