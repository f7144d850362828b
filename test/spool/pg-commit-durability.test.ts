// What a PostgreSQL commit promises when the server dies (pg_ctl stop -m immediate, a crash as far
// as clients can tell) in the middle of a stream of writes from several connections, on a private
// server (never the machine's). Every write the ledger acknowledged as durable is there after the
// restart: a file's creation and a transition (each one statement, without BEGIN/COMMIT) and a
// transaction. A `losable` write (synchronous_commit off) may be gone, and only such a write; the
// test counts those. A faster commit that is not durable (the last stop's "flushed" lazy commits
// lost push journals this way) fails here.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { openLedger, writeTransaction, FilesRepository, type Ledger } from '../../spool/ledger/index.ts';
import { postgresBinDir, startPrivatePostgres, type PrivatePostgres } from '../helpers/private-postgres.ts';
import { freePort } from '../helpers/sshd.ts';
import { sleep } from '../helpers/crash.ts';

const ROUNDS = 3;
const WRITERS = 4;

const quietLog = { warn: () => {}, error: () => {}, debug: () => {} };

interface Acked {
  created: string[];
  moved: string[];
  transacted: string[];
  losable: string[];
}

/** One writer: create, transition, a two-statement transaction, a losable update, again and again until the server goes. */
async function writeUntilDown(ledger: Ledger, prefix: string, acked: Acked): Promise<void> {
  const files = new FilesRepository(ledger);
  for (let i = 0; ; i++) {
    const id = `${prefix}-${i}`;
    try {
      await files.create({ id, partner_id: 'p', direction: 'out', file_type: '32', name: `${id}.dat`, path: `/out/${id}`, size: 1, sha256: null, sender_code: null, receiver_code: null, file_seq: null, business_date: null, record_count: 1, accepted_count: 1, rejected_count: 0, amount_total: null, parent_id: null, state: 'ready' }, 'made');
      acked.created.push(id);
      await files.transition(id, 'ready', 'sending', 'push');
      acked.moved.push(id);
      await writeTransaction(ledger, async (trx) => {
        await trx('deliveries').insert({ file_id: id, attempt: 1, protocol: 'local', remote_name: `${id}.dat`, started_at: Date.now(), phase: 'staging' });
        await files.transition(id, 'sending', 'sent', 'pushed', {}, trx);
      });
      acked.transacted.push(id);
      await files.update(id, { path: `/archive/${id}` }, { losable: true });
      acked.losable.push(id);
    } catch {
      return; // the server is gone
    }
  }
}

describe('PostgreSQL commits across an immediate stop', { skip: postgresBinDir() ? false : 'no PostgreSQL binaries under /usr/lib/postgresql' }, () => {
  let pg: PrivatePostgres | undefined;
  after(async () => {
    await pg?.dispose();
  });

  it('every acknowledged commit survives; only losable ones may be lost', { timeout: 180_000 }, async () => {
    pg = await startPrivatePostgres(await freePort());
    await pg.createDatabase('durability');
    const url = pg.url('durability');
    let lostLosable = 0;
    let losableTotal = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const ledger = await openLedger(url, { log: quietLog });
      const acked: Acked = { created: [], moved: [], transacted: [], losable: [] };
      const writers = Array.from({ length: WRITERS }, (_, w) => writeUntilDown(ledger, `r${round}w${w}`, acked));
      await sleep(800 + round * 300);
      await pg.stop('immediate');
      await Promise.all(writers);
      await ledger.close().catch(() => undefined);
      await pg.start();

      const check = await openLedger(url, { log: quietLog });
      try {
        const rows = (await check.db('files').where('id', 'like', `r${round}w%`).select('id', 'state', 'path')) as { id: string; state: string; path: string }[];
        const byId = new Map(rows.map((r) => [r.id, r]));
        const history = (await check.db('transitions').where('file_id', 'like', `r${round}w%`).select('file_id', 'to_state')) as { file_id: string; to_state: string }[];
        const states = new Map<string, Set<string>>();
        for (const h of history) (states.get(h.file_id) ?? states.set(h.file_id, new Set()).get(h.file_id)!).add(h.to_state);
        assert.ok(acked.losable.length > 0, `round ${round}: the writers got some work done before the stop`);
        for (const id of acked.created) assert.ok(byId.has(id) && states.get(id)?.has('ready'), `round ${round}: acknowledged creation of ${id} lost`);
        for (const id of acked.moved) assert.ok(states.get(id)?.has('sending') && byId.get(id)!.state !== 'ready', `round ${round}: acknowledged transition of ${id} lost`);
        for (const id of acked.transacted) {
          assert.equal(byId.get(id)!.state, 'sent', `round ${round}: acknowledged transaction of ${id} lost`);
          assert.equal(Number(((await check.db('deliveries').where({ file_id: id }).count({ n: '*' }))[0] as { n: number }).n), 1, `round ${round}: ${id}'s deliveries row`);
        }
        losableTotal += acked.losable.length;
        lostLosable += acked.losable.filter((id) => byId.get(id)!.path !== `/archive/${id}`).length;
      } finally {
        await check.close();
      }
    }
    console.log(`# ${ROUNDS} immediate stops: every acknowledged commit kept; ${lostLosable} of ${losableTotal} acknowledged losable updates lost (allowed)`);
  });
});
