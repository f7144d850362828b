// Group commit: sharedCommit (writes that come together share one SQLite transaction and one
// flush, each in a savepoint of its own) and SharedSyncs (concurrent fsyncs of one path shared).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openLedger, sharedCommit, FilesRepository, type NewFile } from '../../spool/ledger/index.ts';
import { SharedSyncs } from '../../spool/atomic.ts';

const inbound = (id: string): NewFile => ({
  id, partner_id: 'm1', direction: 'in', name: `${id}.dat`, path: null, size: null, sha256: null, file_type: null, sender_code: null, receiver_code: null,
  file_seq: null, business_date: null, record_count: null, accepted_count: null, rejected_count: null, amount_total: null, parent_id: null, state: 'received',
});

it('sharedCommit on SQLite: writes asked for together commit in one transaction; one that throws is rolled back alone and rejects alone', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-shared-'));
  const ledger = await openLedger(`sqlite:${path.join(dir, 'l.db')}`);
  try {
    const files = new FilesRepository(ledger);
    let begins = 0;
    ledger.db.on('query', (q: { sql: string }) => {
      if (/^begin/i.test(q.sql)) begins++;
    });
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        sharedCommit(ledger, async (trx) => {
          await files.create(inbound(`F${i}`), 'test', undefined, undefined, trx);
          if (i === 3) throw new Error('the fourth write fails after its insert');
          return i;
        }),
      ),
    );
    assert.equal(begins, 1, 'one transaction for the ten writes');
    assert.deepEqual(results.map((r) => r.status), results.map((_, i) => (i === 3 ? 'rejected' : 'fulfilled')));
    assert.match(String((results[3] as PromiseRejectedResult).reason), /fourth write fails/);
    assert.deepEqual(results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<number>).value), [0, 1, 2, 4, 5, 6, 7, 8, 9]);
    const ids = ((await ledger.db('files').select('id').orderBy('id')) as { id: string }[]).map((r) => r.id);
    assert.deepEqual(ids, ['F0', 'F1', 'F2', 'F4', 'F5', 'F6', 'F7', 'F8', 'F9'], 'the failed write left nothing');
    assert.equal(Number(((await ledger.db('transitions').count({ n: '*' })) as { n: number }[])[0]!.n), 9);

    // A write alone that throws rolls its transaction back.
    await assert.rejects(sharedCommit(ledger, async (trx) => {
      await files.create(inbound('G1'), 'test', undefined, undefined, trx);
      throw new Error('alone');
    }), /alone/);
    assert.equal(await files.get('G1'), undefined);
  } finally {
    await ledger.close();
    await rm(dir, { recursive: true, force: true });
  }
});

it('SharedSyncs: callers that come while a sync runs share the next one, which starts after it', async () => {
  const started: number[] = [];
  let release!: () => void;
  let n = 0;
  const syncs = new SharedSyncs(async () => {
    started.push(++n);
    await new Promise<void>((r) => (release = r));
  });
  const first = syncs.sync('/a');
  const later = Array.from({ length: 5 }, () => syncs.sync('/a'));
  assert.equal(started.length, 1, 'the later callers wait for the running sync to end');
  release();
  await first;
  await new Promise((r) => setImmediate(r));
  assert.equal(started.length, 2, 'one more sync for all five later callers');
  release();
  await Promise.all(later);
  const other = syncs.sync('/b');
  assert.equal(started.length, 3, 'another path has its own');
  release();
  await other;
});
