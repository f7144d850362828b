// Encryption at rest through a whole cycle: the same merchant files through a plain centre and an
// encrypting one give byte-identical files at the partners, while nothing under the encrypting
// centre's spool (work, archive, outbound, anything) holds a whole card number; files are 0600,
// folders 0700, the ledger 0600; a key file others can read stops the centre; `keys rotate`
// re-wraps without rewriting data; an operator's export decrypts and is audited.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, chmod, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { runCycle } from '../../jobs/cycle.ts';
import { createLogger } from '../../jobs/log.ts';
import { exportFile, rotateKeys } from '../../jobs/at-rest.ts';
import { openSource, streamCanonical } from '../../formats/index.ts';
import { HEADER_BYTES, isEncryptedFile, kekIdsOf, readSpoolFile } from '../../spool/encrypted-file.ts';
import { sha256File } from '../../spool/checksum.ts';
import { makeJobContext } from '../../jobs/runtime.ts';
import { scan } from '../../jobs/handlers/scan.ts';
import { ingest } from '../../jobs/handlers/ingest.ts';
import type { JobRequest } from '../../jobs/context.ts';
import { KeyError, writeNewKekFile } from '../../spool/keys.ts';
import { listAudit } from '../../spool/ledger/audit.ts';
import { makeTestCentre, dropSalesFiles, remoteContents, type TestCentre } from '../helpers/centre.ts';

const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

async function walk(dir: string): Promise<{ files: string[]; dirs: string[] }> {
  const out = { files: [] as string[], dirs: [dir] };
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const sub = await walk(p);
      out.files.push(...sub.files);
      out.dirs.push(...sub.dirs);
    } else out.files.push(p);
  }
  return out;
}

/** Every whole card number in the merchants' files (read before the cycle, through the layouts). */
async function cardNumbersIn(centre: TestCentre): Promise<string[]> {
  const cards = new Set<string>();
  for (const id of centre.merchantIds) {
    const dir = path.join(centre.dir, 'spool', 'partners', id, 'inbound');
    for (const name of await readdir(dir)) {
      const src = await openSource(path.join(dir, name), {});
      await streamCanonical(src, (rec, off, _n, type, layout) => {
        const f = type === '2' ? layout?.byName.get('cardNo') : undefined;
        if (f) cards.add(rec.toString('latin1', off + f.offset, off + f.offset + f.length).trim());
      });
    }
  }
  return [...cards];
}

async function cycle(def: TestCentre): Promise<void> {
  const centre = await openCentre(def.configFile, { log: quiet() });
  const engine = await startEngine(centre, { lockDurationMs: 5000, stalledIntervalMs: 2000 });
  try {
    await runCycle(engine, { date: '20261126' });
  } finally {
    await engine.stop();
    await centre.close();
  }
}

describe('encryption at rest through a cycle', () => {
  const made: TestCentre[] = [];
  const savedNow = process.env.TSUNAGI_NOW;
  let plain: TestCentre;
  let secret: TestCentre;
  let cards: string[];
  before(async () => {
    process.env.TSUNAGI_NOW = '2026-11-25T17:30:00Z';
    plain = await makeTestCentre({ merchants: 3, companies: 2, recordsPerFile: 40 });
    secret = await makeTestCentre({ merchants: 3, companies: 2, recordsPerFile: 40 });
    made.push(plain, secret);
    await writeNewKekFile(path.join(secret.dir, 'kek'));
    await appendFile(secret.configFile, 'encryption: { kek: { file: ./kek } }\n');
    await dropSalesFiles(plain, { records: 40 });
    await dropSalesFiles(secret, { records: 40 });
    cards = await cardNumbersIn(plain);
    assert.ok(cards.length >= 100, `${cards.length} card numbers`);
    await cycle(plain);
    await cycle(secret);
  });
  after(async () => {
    if (savedNow === undefined) delete process.env.TSUNAGI_NOW;
    else process.env.TSUNAGI_NOW = savedNow;
    for (const c of made) await rm(c.dir, { recursive: true, force: true });
  });

  it('partners get the same plaintext bytes; the encrypted spool and the ledger hold no whole card number', async () => {
    const left = await remoteContents(plain);
    const right = await remoteContents(secret);
    assert.ok(left.size >= 6, `${left.size} delivered files`);
    assert.deepEqual([...right.keys()].sort(), [...left.keys()].sort());
    for (const [name, bytes] of left) assert.ok(bytes.equals(right.get(name)!), `${name} differs`);
    const delivered = Buffer.concat([...right.values()]).toString('latin1');
    assert.ok(cards.some((c) => delivered.includes(c)), 'the partners received whole card numbers (as they must)');

    // The plain centre's spool does hold them: the search below can find what it looks for.
    const plainSpool = (await Promise.all((await walk(path.join(plain.dir, 'spool'))).files.map((f) => readFile(f, 'latin1')))).join('\n');
    assert.ok(cards.some((c) => plainSpool.includes(c)));

    const { files, dirs } = await walk(path.join(secret.dir, 'spool'));
    assert.ok(files.length >= 6, `${files.length} spool files`);
    for (const f of [...files, path.join(secret.dir, 'ledger.db')]) {
      const text = await readFile(f, 'latin1');
      for (const c of cards) assert.ok(!text.includes(c), `${path.relative(secret.dir, f)} holds a whole card number`);
    }
    for (const f of files) assert.equal((await stat(f)).mode & 0o777, 0o600, `${path.relative(secret.dir, f)} mode`);
    for (const d of dirs) assert.equal((await stat(d)).mode & 0o777, 0o700, `${path.relative(secret.dir, d)} mode`);
    for (const f of ['ledger.db', 'ledger.db-wal']) {
      const s = await stat(path.join(secret.dir, f)).catch(() => undefined);
      if (s) assert.equal(s.mode & 0o777, 0o600, `${f} mode`);
    }
  });

  it('refuses to start when the key file is readable by group or others', async () => {
    const kek = path.join(secret.dir, 'kek');
    await chmod(kek, 0o644);
    try {
      await assert.rejects(openCentre(secret.configFile, { log: quiet() }), (e: Error) => e instanceof KeyError && e.message.includes(kek) && /chmod 600/.test(e.message));
    } finally {
      await chmod(kek, 0o600);
    }
  });

  it('keys rotate re-wraps every file under the new key without rewriting data; the old key can then go', async () => {
    const { files } = await walk(path.join(secret.dir, 'spool'));
    const bodies = new Map<string, Buffer>();
    const plaintexts = new Map<string, Buffer>();
    for (const f of files) bodies.set(f, (await readFile(f)).subarray(HEADER_BYTES));
    // Everything but the reconciliation report (masked numbers only, kept plain) is encrypted.
    const encrypted: string[] = [];
    for (const f of files) if ((await kekIdsOf(f)).length) encrypted.push(f);
    assert.deepEqual(files.filter((f) => !encrypted.includes(f)).map((f) => path.relative(secret.dir, f)), ['spool/reports/reconcile-20261125.csv']);
    const oldId = (await kekIdsOf(encrypted[0]!))[0];
    const original = await readFile(secret.configFile, 'utf8');
    const next = await writeNewKekFile(path.join(secret.dir, 'kek-2'));
    const rotating = original.replace('encryption: { kek: { file: ./kek } }', 'encryption: { kek: { file: ./kek-2 }, retired: [{ file: ./kek }] }');
    await import('node:fs/promises').then((fs) => fs.writeFile(secret.configFile, rotating));
    let centre = await openCentre(secret.configFile, { log: quiet() });
    try {
      for (const f of files) plaintexts.set(f, await readSpoolFile(f));
      const s = await rotateKeys(centre);
      assert.equal(s.failed.length, 0, JSON.stringify(s.failed));
      assert.equal(s.rewrapped, encrypted.length);
      assert.equal(s.plain, 1);
      assert.deepEqual(s.unusedRetired, [oldId]);
      assert.equal((await rotateKeys(centre)).current, encrypted.length);
    } finally {
      await centre.close();
    }
    for (const f of encrypted) {
      assert.deepEqual(await kekIdsOf(f), [next.id], f);
      assert.ok((await readFile(f)).subarray(HEADER_BYTES).equals(bodies.get(f)!), `${f}: data bytes were rewritten`);
    }
    // The old key removed from the config: everything still reads.
    await import('node:fs/promises').then((fs) => fs.writeFile(secret.configFile, original.replace('encryption: { kek: { file: ./kek } }', 'encryption: { kek: { file: ./kek-2 } }')));
    centre = await openCentre(secret.configFile, { log: quiet() });
    try {
      for (const [f, want] of plaintexts) assert.ok((await readSpoolFile(f)).equals(want), `${f} after rotation`);

      // The operator's export: plaintext out of the spool, audited with the reason.
      const row = (await centre.ledger.db('files').where({ direction: 'out' }).whereNotNull('path').first()) as { id: string; path: string };
      const out = path.join(secret.dir, 'export.dat');
      await assert.rejects(exportFile(centre, row.id, path.join(secret.dir, 'spool', 'x.dat'), 'look'), /outside the spool/);
      await assert.rejects(exportFile(centre, row.id, out, ' '), /reason/);
      const r = await exportFile(centre, row.id, out, 'dispute 2026-123', 'ops-alice');
      assert.equal((await stat(out)).mode & 0o777, 0o600);
      const exported = await readFile(out);
      assert.equal(exported.length, r.bytes);
      assert.ok(plaintexts.has(row.path), `${row.path} not in ${[...plaintexts.keys()].join(' ')}`);
      assert.ok(exported.equals(plaintexts.get(row.path)!));
      const audit = await listAudit(centre.ledger, { protocol: 'cli' });
      assert.ok(audit.some((a) => a.event === 'action' && a.remote === 'ops-alice' && a.detail?.includes(row.id) && a.detail.includes('dispute 2026-123')), JSON.stringify(audit));
      assert.ok(audit.some((a) => a.detail?.startsWith('keys rotate:')));
    } finally {
      await centre.close();
    }
  });
});

describe("a partner's own drop into inbound", () => {
  it('is claimed as it came, encrypted by its ingest once validated: accepted in work/, rejected in the archive', async () => {
    const def = await makeTestCentre({ merchants: 2, companies: 1 });
    await writeNewKekFile(path.join(def.dir, 'kek'));
    await appendFile(def.configFile, 'encryption: { kek: { file: ./kek } }\n');
    await dropSalesFiles(def, { records: 30 });
    const bad = path.join(def.dir, 'spool', 'partners', 'm002', 'inbound');
    for (const name of await readdir(bad)) await rm(path.join(bad, name));
    const garbage = Buffer.from('not a record file at all\r\n'.repeat(20), 'latin1');
    await writeFile(path.join(bad, 'broken.dat'), garbage);
    const centre = await openCentre(def.configFile, { log: quiet() });
    try {
      const queued: JobRequest[] = [];
      const ctx = makeJobContext(centre, async (r) => void queued.push(r));
      await scan({}, ctx);
      const ingests = queued.filter((r) => r.kind === 'ingest');
      assert.equal(ingests.length, 2);
      const rows = await Promise.all(ingests.map((r) => centre.files.require(String(r.input.fileId))));
      // The claim renamed them only: still the partners' bytes, with their checksums taken.
      for (const row of rows) assert.equal(await isEncryptedFile(row.path!), false, `${row.partner_id}: encrypted at the claim`);
      for (const r of ingests) await ingest(r.input, ctx);
      const [good, broken] = await Promise.all(['m001', 'm002'].map(async (p) => centre.files.require(rows.find((r) => r.partner_id === p)!.id)));
      assert.equal(good!.state, 'accepted');
      assert.equal(broken!.state, 'rejected');
      assert.ok(broken!.path!.includes(`${path.sep}archive${path.sep}`), broken!.path!);
      for (const row of [good!, broken!]) {
        assert.equal(await isEncryptedFile(row.path!), true, `${row.partner_id}: not encrypted after ingest`);
        assert.equal((await sha256File(row.path!)).sha256, row.sha256, `${row.partner_id}: plaintext changed`);
      }
      assert.ok((await readSpoolFile(broken!.path!)).equals(garbage));
      assert.deepEqual((await readdir(centre.spool.work)).filter((n) => n.endsWith('.part')), [], 'temporaries left in work/');
      // A second ingest of an accepted file (a retry) leaves it as it is.
      const before = await readFile(good!.path!);
      await ingest({ fileId: good!.id }, ctx);
      assert.ok((await readFile(good!.path!)).equals(before));
    } finally {
      await centre.close();
      await rm(def.dir, { recursive: true, force: true });
    }
  });
});
