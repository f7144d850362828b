// One partner's file must not stop the others: a name of 77 katakana (231 bytes), names with
// control bytes or bidirectional overrides, in scan, collect and sweep. Unusable files go to
// error/ with a rejected ledger row and an alert; work and archive names never carry the
// partner's name (the ledger keeps it).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { generateFile } from '../../formats/index.ts';
import { openCentre, type Centre } from '../../jobs/centre.ts';
import { makeJobContext } from '../../jobs/runtime.ts';
import { createLogger } from '../../jobs/log.ts';
import { scan, recoverUnregisteredWork } from '../../jobs/handlers/scan.ts';
import { collect } from '../../jobs/handlers/collect.ts';
import { claimFile, newFileId } from '../../spool/claim.ts';
import type { JobRequest } from '../../jobs/context.ts';
import { makeTestCentre, merchantCode, merchantNo, type TestCentre } from '../helpers/centre.ts';

const KATAKANA_77 = 'ア'.repeat(77); // 231 bytes in UTF-8: with any prefix, over 255
const CONTROL = 'bad\u0001name.dat';
const BIDI = 'invoice\u202Etad.exe';

function capture(): { log: ReturnType<typeof createLogger>; lines: () => Array<Record<string, unknown>> } {
  let text = '';
  const log = createLogger({ level: 'info', destination: new Writable({ write: (c, _e, done) => ((text += c.toString()), done()) }) });
  return { log, lines: () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function salesFile(out: string, i: number, seed: number): Promise<void> {
  await generateFile('31', { records: 3, seed, merchantNo: merchantNo(i), senderCode: merchantCode(i), receiverCode: '0000000001', fileSeq: seed, cardCompanyCodes: ['001'], createdDate: '20261125', out });
}

describe('isolation of one file from the others', () => {
  const made: TestCentre[] = [];
  const open: Centre[] = [];
  after(async () => {
    for (const c of open) await c.close();
    for (const c of made) await rm(c.dir, { recursive: true, force: true });
  });

  it('scan: a 77-katakana name goes through; control and bidi names go to error/; every other file is claimed', async () => {
    const c = await makeTestCentre({ merchants: 2, companies: 1 });
    made.push(c);
    const inbound = (id: string) => path.join(c.dir, 'spool', 'partners', id, 'inbound');
    await salesFile(path.join(inbound('m001'), KATAKANA_77), 0, 1);
    await salesFile(path.join(inbound('m001'), CONTROL), 0, 2);
    await salesFile(path.join(inbound('m001'), 'ok-1.dat'), 0, 3);
    await salesFile(path.join(inbound('m002'), BIDI), 1, 4);
    await salesFile(path.join(inbound('m002'), 'ok-2.dat'), 1, 5);
    const { log, lines } = capture();
    const centre = await openCentre(c.configFile, { log });
    open.push(centre);
    const enqueued: JobRequest[] = [];
    const ctx = makeJobContext(centre, async (r) => void enqueued.push(r));
    await scan({}, ctx);

    const files = await centre.files.list({ direction: 'in' });
    const received = files.filter((f) => f.state === 'received').map((f) => f.name).sort();
    assert.deepEqual(received, ['ok-1.dat', 'ok-2.dat', KATAKANA_77].sort());
    const rejected = files.filter((f) => f.state === 'rejected');
    assert.deepEqual(rejected.map((f) => f.name).sort(), ['bad\\u0001name.dat', 'invoice\\u202etad.exe']);
    for (const f of rejected) {
      assert.match(f.reason ?? '', /^quarantined: (bidirectional )?control character/);
      assert.equal(path.dirname(f.path!), path.join(c.dir, 'spool', 'error'));
      assert.equal(path.basename(f.path!), `${f.id}@${f.partner_id}`);
    }
    assert.deepEqual((await readdir(path.join(c.dir, 'spool', 'error'))).sort(), rejected.map((f) => `${f.id}@${f.partner_id}`).sort());
    // Work names are ours alone; no claim notes are left once the rows exist.
    const work = await readdir(path.join(c.dir, 'spool', 'work'));
    for (const name of work.filter((n) => n.includes('@'))) assert.match(name, /^I[0-9a-z]+@m00[12]$/);
    assert.deepEqual(work.filter((n) => n.endsWith('.name')), []);
    assert.equal(enqueued.filter((r) => r.kind === 'ingest').length, 3);
    const alerts = lines().filter((l) => l.alert === 'file-quarantined');
    assert.equal(alerts.length, 2);
    assert.ok(alerts.every((a) => !String(a.fileName).includes('\u202E') && !String(a.fileName).includes('\u0001')), 'log lines carry escaped names');
    assert.deepEqual(await readdir(inbound('m001')), []);
    assert.deepEqual(await readdir(inbound('m002')), []);
  });

  it('sweep: a claim cut short by a crash is registered under the partner\'s own name', async () => {
    const c = await makeTestCentre({ merchants: 1, companies: 1 });
    made.push(c);
    const centre = await openCentre(c.configFile, { log: capture().log });
    open.push(centre);
    const src = path.join(c.dir, 'spool', 'partners', 'm001', 'inbound', KATAKANA_77);
    await salesFile(src, 0, 7);
    const fileId = newFileId('I');
    const claimed = await claimFile(src, centre.spool.work, fileId, 'm001');
    assert.ok(claimed);
    // ... and the process died before the ledger row.
    const ctx = makeJobContext(centre, async () => undefined);
    assert.equal(await recoverUnregisteredWork(ctx), 1);
    const row = await centre.files.require(fileId);
    assert.equal(row.name, KATAKANA_77);
    assert.equal(row.state, 'received');
    assert.deepEqual((await readdir(centre.spool.work)).filter((n) => n.startsWith('.')), []);
  });

  it('collect: a remote name with a control byte is skipped with an alert; the other card companies are collected', async () => {
    const c = await makeTestCentre({ merchants: 1, companies: 2 });
    made.push(c);
    const config = (await readFile(c.configFile, 'utf8'))
      .replace('delivery: { protocol: local, path: ./remote/cc1 } }', 'delivery: { protocol: local, path: ./remote/cc1, pullPath: ./pull/cc1 }, collect: true }')
      .replace('delivery: { protocol: local, path: ./remote/cc2 } }', 'delivery: { protocol: local, path: ./remote/cc2, pullPath: ./pull/cc2 }, collect: true }');
    await writeFile(c.configFile, config);
    for (const id of ['cc1', 'cc2']) await mkdir(path.join(c.dir, 'pull', id), { recursive: true });
    await writeFile(path.join(c.dir, 'pull', 'cc1', 'RESULT\u0007.DAT'), 'x');
    await writeFile(path.join(c.dir, 'pull', 'cc1', 'RESULT-1.DAT'), 'one');
    await writeFile(path.join(c.dir, 'pull', 'cc2', 'RESULT-2.DAT'), 'two');
    const { log, lines } = capture();
    const centre = await openCentre(c.configFile, { log });
    open.push(centre);
    await collect({}, makeJobContext(centre, async () => undefined));
    assert.deepEqual(await readdir(path.join(c.dir, 'spool', 'partners', 'cc1', 'inbound')), ['RESULT-1.DAT']);
    assert.deepEqual(await readdir(path.join(c.dir, 'spool', 'partners', 'cc2', 'inbound')), ['RESULT-2.DAT']);
    const alert = lines().find((l) => l.alert === 'collect-unsafe-name');
    assert.ok(alert, 'an alert names the skipped file');
    assert.equal(alert.fileName, 'RESULT\\u0007.DAT');
  });
});
