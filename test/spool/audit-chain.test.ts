// The audit hash chain on SQLite and PostgreSQL: an edited, deleted or reordered row is found and
// named, concurrent writers (separate connection pools, as separate worker processes have) still
// make one valid chain, and pruning keeps the rest verifiable from its checkpoint.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LEDGER_KINDS, type TestLedger } from '../helpers/ledgers.ts';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openLedger, recordAudit, verifyAuditChain, pruneAudit, AuditChainBroken, listAudit } from '../../spool/ledger/index.ts';

for (const [kind, make] of LEDGER_KINDS) {
  describe(`audit chain on ${kind}`, () => {
    let t: TestLedger;
    before(async () => {
      t = await make();
    });
    after(async () => t.dispose());

    const fill = async (n: number, at = Date.now()) => {
      for (let i = 0; i < n; i++) await recordAudit(t.ledger, { partnerId: 'm001', protocol: 'sftp', event: 'upload', remote: '127.0.0.1:5000', detail: `file${i}.dat ${i} bytes` }, at + i);
    };
    const ids = async () => (await listAudit(t.ledger)).map((r) => r.id);
    /** Runs `fn`, checks verify names `expectRow`, then puts the table back as it was. */
    const tampered = async (fn: () => Promise<unknown>, expectRow: (before: number[]) => number) => {
      const snapshot = await t.ledger.db('audit').orderBy('id');
      const rowsBefore = snapshot.map((r: { id: number }) => Number(r.id));
      await fn();
      const result = await verifyAuditChain(t.ledger);
      assert.equal(result.ok, false, 'tampering went unnoticed');
      assert.equal(result.problem!.rowId, expectRow(rowsBefore), result.problem!.reason);
      await t.ledger.db('audit').delete();
      await t.ledger.db('audit').insert(snapshot);
      assert.equal((await verifyAuditChain(t.ledger)).ok, true);
    };

    it('a fresh chain verifies and each row carries the previous hash', async () => {
      await fill(12);
      const rows = await listAudit(t.ledger);
      for (let i = 1; i < rows.length; i++) assert.equal(rows[i]!.prev_hash, rows[i - 1]!.hash);
      const result = await verifyAuditChain(t.ledger);
      assert.equal(result.ok, true, result.problem?.reason);
      assert.equal(result.rows, 12);
      assert.equal(result.lastId, rows.at(-1)!.id);
    });

    it('an edited row is named', async () => {
      await tampered(async () => {
        const id = (await ids())[4]!;
        await t.ledger.db('audit').where({ id }).update({ detail: 'file4.dat 0 bytes' });
      }, (b) => b[4]!);
    });

    it('an edited row whose hash was recomputed breaks at the next row', async () => {
      await tampered(async () => {
        const id = (await ids())[4]!;
        await t.ledger.db('audit').where({ id }).update({ event: 'download', hash: 'f'.repeat(64) });
      }, (b) => b[4]!);
      // The forger recomputes the hash properly: the next row no longer follows it.
      const { auditRowHash } = await import('../../spool/ledger/audit.ts');
      await tampered(async () => {
        const row = (await listAudit(t.ledger))[4]!;
        const forged = { ...row, event: 'download' as const };
        await t.ledger.db('audit').where({ id: row.id }).update({ event: 'download', hash: auditRowHash(forged, row.prev_hash) });
      }, (b) => b[5]!);
    });

    it('a deleted row is named (the row after it), and so is a deleted tail', async () => {
      await tampered(() => t.ledger.db('audit').where({ id: 0 }).orWhere('id', '=', t.ledger.db('audit').min('id')).delete().then(async () => undefined), (b) => b[1]!);
      await tampered(async () => {
        const id = (await ids())[6]!;
        await t.ledger.db('audit').where({ id }).delete();
      }, (b) => b[7]!);
      await tampered(async () => {
        const all = await ids();
        await t.ledger.db('audit').where('id', '>=', all[10]!).delete();
      }, (b) => b[10]!);
    });

    it('reordered rows are named', async () => {
      await tampered(async () => {
        const rows = await t.ledger.db('audit').orderBy('id');
        const [a, b] = [rows[2], rows[3]];
        // Swap the two rows' contents, hashes and all, keeping the ids.
        await t.ledger.db('audit').where({ id: a.id }).update({ ...b, id: a.id });
        await t.ledger.db('audit').where({ id: b.id }).update({ ...a, id: b.id });
      }, (b) => b[2]!);
    });

    it('concurrent writers in separate processes make one valid chain', async () => {
      const writer = (n: number) =>
        new Promise<void>((resolve, reject) => {
          const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, '../helpers/audit-writer.ts'), t.url, String(n), '20'], { stdio: ['ignore', 'ignore', 'inherit'] });
          child.on('error', reject);
          child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer ${n} exited ${code}`))));
        });
      await Promise.all([writer(1), writer(2), ...Array.from({ length: 10 }, (_, i) => recordAudit(t.ledger, { partnerId: 'w0', protocol: 'ftp', event: 'login_ok', detail: `writer 0 row ${i}` }))]);
      const result = await verifyAuditChain(t.ledger);
      assert.equal(result.ok, true, result.problem?.reason);
      assert.equal(result.rows, 12 + 50);
      assert.deepEqual(new Set((await listAudit(t.ledger)).map((r) => r.partner_id)), new Set(['m001', 'w0', 'w1', 'w2']));
    });

    it('pruning keeps a checkpoint and the rest still verifies; a broken chain is not pruned', async () => {
      const t0 = Date.now() - 10 * 86400_000;
      await t.ledger.db('audit').update({ at: t0 }); // every row so far is old (and the hashes no longer match)
      const broken = await verifyAuditChain(t.ledger);
      assert.equal(broken.ok, false);
      await assert.rejects(pruneAudit(t.ledger, Date.now() - 86400_000), AuditChainBroken);
      assert.equal((await ids()).length, 62, 'a broken chain must not be pruned');
      // Rebuild a clean ledger state for the prune itself.
      await t.ledger.db('audit').delete();
      await t.ledger.db('audit_chain').update({ last_id: 0, last_hash: '0'.repeat(64) });
      await fill(8, t0);
      await fill(5);
      const result = await pruneAudit(t.ledger, Date.now() - 86400_000);
      assert.equal(result.pruned, 8);
      assert.equal(result.checkpoint!.pruned_rows, 8);
      const left = await listAudit(t.ledger);
      assert.equal(left.length, 5 + 1, 'the five new rows and the prune record');
      assert.match(left.at(-1)!.detail!, /pruned 8 rows through/);
      const after = await verifyAuditChain(t.ledger);
      assert.equal(after.ok, true, after.problem?.reason);
      assert.equal(after.checkpoint?.through_id, result.checkpoint!.through_id);
      // Tampering after a prune is still found; a deleted first row after the checkpoint too.
      await tampered(async () => {
        const first = (await ids())[0]!;
        await t.ledger.db('audit').where({ id: first }).delete();
      }, (b) => b[1]!);
      // Pruning again with nothing old is a no-op.
      assert.equal((await pruneAudit(t.ledger, Date.now() - 86400_000)).pruned, 0);
    });
  });
}

describe('tsunagi audit verify', () => {
  it('exits 0 on a good chain and 4 naming the first bad row on an edited one', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-audit-cli-'));
    try {
      const cfg = path.join(dir, 'tsunagi.yaml');
      await writeFile(cfg, ['centre: { code: "0000000001", name: AUDIT TEST }', 'spoolRoot: ./spool', 'ledger: sqlite:./ledger.db', 'queue: embedded', 'partners: []', ''].join('\n'));
      const ledger = await openLedger(`sqlite:${path.join(dir, 'ledger.db')}`);
      for (let i = 0; i < 5; i++) await recordAudit(ledger, { partnerId: 'm001', protocol: 'ftp', event: 'upload', detail: `f${i}` });
      const cli = (args: string[]) =>
        new Promise<{ code: number; out: string; err: string }>((resolve) =>
          execFile(process.execPath, [path.resolve('bin/tsunagi.js'), ...args, '--config', cfg], (err, out, errText) => resolve({ code: err ? Number((err as { code: number }).code) : 0, out, err: errText })),
        );
      const good = await cli(['audit', 'verify']);
      assert.equal(good.code, 0, good.err);
      assert.match(good.out, /audit chain ok: 5 rows/);
      const third = (await listAudit(ledger))[2]!.id;
      await ledger.db('audit').where({ id: third }).update({ detail: 'quietly changed' });
      await ledger.close();
      const bad = await cli(['audit', 'verify']);
      assert.equal(bad.code, 4);
      assert.match(bad.err, new RegExp(`BROKEN at row ${third}: row ${third} was edited`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
