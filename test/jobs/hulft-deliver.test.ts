// Sending to a card company on HULFT through the deliver job, against the stand-in
// (test/fakes/hulft: NOT HULFT): utlalivecheck then utlsend as an argv, the exit statuses mapped
// as spec hulft.md §2.4, the attempt id in -msg0, checkpoint resend, and an rc 4 settled by the
// post-send job (tsunagi hulft-sent, run by the stand-in as HULFT would).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { generateFile } from '../../formats/index.ts';
import { openCentre, type Centre } from '../../jobs/centre.ts';
import { startEngine, type Engine } from '../../jobs/engine.ts';
import { jobId } from '../../jobs/context.ts';
import { createLogger } from '../../jobs/log.ts';
import { sha256File } from '../../spool/checksum.ts';
import { newFileId } from '../../spool/claim.ts';
import { makeTestCentre, type TestCentre } from '../helpers/centre.ts';
import { makeHulftWorld, ourDefs, OUR_NODE, type HulftWorld } from '../helpers/hulft.ts';
import { waitUntil } from '../helpers/crash.ts';
import { command as hulftSent } from '../../scripts/commands/hulft-sent.ts';

const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

describe('deliver to a card company on HULFT (stand-in)', () => {
  let c: TestCentre;
  let world: HulftWorld;
  let centre: Centre;
  let engine: Engine;
  let leave: () => void;
  let seq = 0;
  const alphaRcv = () => path.join(c.dir, 'alpha01', 'rcv');

  const partnerDefs = (host: string, fileId: string, extra: Record<string, unknown> = {}) =>
    world.writeDefs(host, { receive: [{ fileId, fileName: path.join(c.dir, host.toLowerCase(), 'rcv', fileId), mode: 'new', generations: 99, onError: 'delete', notify: 'job', jobs: {} }], ...extra });

  before(async () => {
    c = await makeTestCentre({ merchants: 1, companies: 2, maxAttempts: 3, backoffSeconds: 0.05 });
    world = await makeHulftWorld(c.dir);
    const send = (id: string) => `[{ fileId: ${id}, fileTypes: ["32", "41"], fileName: ${path.join(c.dir, 'unused', id)}, transferType: binary, codeConversion: none, jobs: { success: TSGSENT, failure: TSGSENT } }]`;
    let text = await readFile(c.configFile, 'utf8');
    text = text
      .replace('workers: { concurrency: 2 }', `workers: { concurrency: 2, threads: 0 }\n${world.centreYaml()}`)
      .replace('delivery: { protocol: local, path: ./remote/cc1 } }', `delivery: { protocol: hulft }, hulft: { host: ALPHA01, send: ${send('TSG32A')} } }`)
      .replace('delivery: { protocol: local, path: ./remote/cc2 } }', `delivery: hulft, hulft: { host: BETA01, resend: checkpoint, send: ${send('TSG32B')} } }`);
    await writeFile(c.configFile, text);
    leave = world.enter();
    centre = await openCentre(c.configFile, { log: quiet() });
    engine = await startEngine(centre);
    await world.writeDefs(OUR_NODE, ourDefs(centre.config));
    await partnerDefs('ALPHA01', 'TSG32A');
    await partnerDefs('BETA01', 'TSG32B');
  });

  after(async () => {
    await engine?.stop();
    await centre?.close();
    leave?.();
    if (c) await rm(c.dir, { recursive: true, force: true });
  });

  /** A ready 32 file in a company's outbound folder, as the route job leaves it. */
  async function readyFile(partnerId: string): Promise<string> {
    seq++;
    const name = `T32_test${seq}.dat`;
    const p = path.join(centre.spool.outbound(partnerId), name);
    await generateFile('32', { records: 4, seed: seq, senderCode: '0000000001', receiverCode: '2000000001', cardCompanyCodes: ['001'], out: p });
    const { sha256, size } = await sha256File(p);
    const id = newFileId('O');
    await centre.files.create(
      { id, partner_id: partnerId, direction: 'out', file_type: '32', name, path: p, size, sha256, sender_code: '0000000001', receiver_code: '2000000001', file_seq: String(seq).padStart(6, '0'), business_date: '20261126', record_count: 4, accepted_count: null, rejected_count: null, amount_total: null, parent_id: null, state: 'ready' },
      'test',
    );
    return id;
  }

  async function deliver(id: string): Promise<void> {
    await engine.enqueue({ kind: 'deliver', input: { fileId: id, force: true }, jobId: jobId('deliver', id, 'test', Date.now()) });
    await engine.drain();
  }

  const transfers = (fileId: string) => centre.ledger.db('hulft_transfers').where({ file_id: fileId }).orderBy('id');

  it('push: utlalivecheck, then utlsend -sync -w as an argv with the attempt id in -msg0', async () => {
    const id = await readyFile('cc1');
    const before = (await world.log(OUR_NODE, 'cmd')).length;
    await deliver(id);
    const file = await centre.files.require(id);
    assert.equal(file.state, 'sent', file.reason ?? '');
    const cmds = (await world.log(OUR_NODE, 'cmd')).slice(before);
    assert.deepEqual(cmds.map((x) => x.command), ['utlalivecheck', 'utlsend']);
    assert.deepEqual(cmds[0]!.argv, ['-h', 'ALPHA01', '-p', '30000', '-w', '10']);
    const [row] = await transfers(id);
    const delivery = await centre.ledger.db('deliveries').where({ file_id: id }).first();
    assert.equal(row.msg0, `TSG${delivery.id}`);
    assert.deepEqual(cmds[1]!.argv, ['-f', 'TSG32A', '-file', path.join(c.dir, 'spool', 'hulft', 'send', `TSG32A.${delivery.id}`), '-h', 'ALPHA01', '-msg0', `TSG${delivery.id}`, '-sync', '-w', '3']);
    assert.equal(row.rc, 0);
    assert.equal(row.outcome, 'ok');
    // The partner holds our bytes, and its 集信履歴 carries the msg0.
    const got = await readdir(alphaRcv());
    assert.equal(got.length, 1);
    assert.ok((await readFile(path.join(alphaRcv(), got[0]!))).equals(await readFile(file.path!)));
    const rcv = (await world.log('ALPHA01', 'rcv')).at(-1)!;
    assert.deepEqual((rcv.msg as string[])[0], `TSG${delivery.id}`);
    // the per-attempt hard link is gone once sent
    assert.deepEqual(await readdir(path.join(c.dir, 'spool', 'hulft', 'send')), []);
  });

  it('partner down: the file stays ready, no attempt counted; it goes once the partner answers', async () => {
    const id = await readyFile('cc1');
    const defs = await world.readDefs('ALPHA01');
    await world.writeDefs('ALPHA01', { ...defs, up: false });
    const before = (await world.log(OUR_NODE, 'cmd')).length;
    await deliver(id);
    let file = await centre.files.require(id);
    assert.equal(file.state, 'ready');
    assert.equal(file.attempts, 0);
    assert.deepEqual((await world.log(OUR_NODE, 'cmd')).slice(before).map((x) => x.command), ['utlalivecheck'], 'no utlsend while the partner is down');
    assert.equal((await centre.ledger.db('deliveries').where({ file_id: id }).first()).outcome, 'deferred');
    await world.writeDefs('ALPHA01', { ...defs, up: true });
    await deliver(id);
    file = await centre.files.require(id);
    assert.equal(file.state, 'sent');
    assert.equal(file.attempts, 1);
  });

  it('rc 11 (file ID not in 配信管理情報) and rc 2 fail at once with an alert; 9 and 5 retry', async () => {
    const ours = await world.readDefs(OUR_NODE);
    await world.writeDefs(OUR_NODE, { ...ours, send: [] });
    const unknownId = await readyFile('cc1');
    await deliver(unknownId);
    let file = await centre.files.require(unknownId);
    assert.equal(file.state, 'failed');
    assert.equal(file.attempts, 1, 'no retries for a config error');
    assert.match(file.reason!, /rc 11/);
    await world.writeDefs(OUR_NODE, ours);
    for (const [rc, state, attempts] of [[2, 'failed', 1], [9, 'sent', 2], [5, 'sent', 2]] as const) {
      await world.setFaults({ rc: { utlsend: [rc] } });
      const id = await readyFile('cc1');
      await deliver(id);
      file = await centre.files.require(id);
      assert.equal(file.state, state, `rc ${rc}: ${file.reason}`);
      assert.equal(file.attempts, attempts, `rc ${rc}`);
    }
  });

  it('21 then ok: a transfer that breaks half way is retried; ABNORMAL delete leaves no partial file', async () => {
    const before = (await readdir(alphaRcv())).length;
    await world.setFaults({ failTransfers: { TSG32A: 1 } });
    const id = await readyFile('cc1');
    await deliver(id);
    const file = await centre.files.require(id);
    assert.equal(file.state, 'sent', file.reason ?? '');
    assert.equal(file.attempts, 2);
    const rows = await transfers(id);
    assert.deepEqual(rows.map((r: { rc: number }) => r.rc), [21, 0]);
    assert.notEqual(rows[0].msg0, rows[1].msg0, 'each attempt has its own id');
    const names = await readdir(alphaRcv());
    assert.equal(names.length, before + 1, 'the broken generation was deleted, the retry landed once');
  });

  it('resend: checkpoint retries with utlsend -r, and sends afresh when the queue is empty (rc 1)', async () => {
    await world.setFaults({ failTransfers: { TSG32B: 1 } });
    const id = await readyFile('cc2');
    const before = (await world.log(OUR_NODE, 'cmd')).length;
    await deliver(id);
    const file = await centre.files.require(id);
    assert.equal(file.state, 'sent', file.reason ?? '');
    const sends = (await world.log(OUR_NODE, 'cmd')).slice(before).filter((x) => x.command === 'utlsend');
    assert.equal(sends.length, 2);
    const rows = await transfers(id);
    assert.deepEqual((sends[1]!.argv as string[]).slice(0, 6), ['-r', 'BETA01', '-f', 'TSG32B', '-file', rows[0].hulft_file_name]);
    assert.equal(rows[1].msg0, rows[0].msg0, 'a checkpoint resend carries the first attempt’s msg0');
    // Nothing queued: -r answers 1 and tsunagi sends afresh.
    await world.setFaults({ rc: { utlsend: [9] } });
    const id2 = await readyFile('cc2');
    const mark = (await world.log(OUR_NODE, 'cmd')).length;
    await deliver(id2);
    assert.equal((await centre.files.require(id2)).state, 'sent');
    const argvs = (await world.log(OUR_NODE, 'cmd')).slice(mark).filter((x) => x.command === 'utlsend').map((x) => (x.argv as string[])[0]);
    assert.deepEqual(argvs, ['-f', '-r', '-f'], 'rc 9, then -r (rc 1: nothing queued), then a fresh send');
  });

  it('rc 4 (timeout): unknown, never resent automatically, settled by HULFT’s 配信後ジョブ (tsunagi hulft-sent)', async () => {
    await world.writeDefs(OUR_NODE, ourDefs(centre.config, { senderJobs: true }));
    await world.setFaults({ delaySeconds: { TSG32A: 5 } });
    const id = await readyFile('cc1');
    await deliver(id);
    let file = await centre.files.require(id);
    assert.equal(file.state, 'unknown', file.reason ?? '');
    assert.equal((await transfers(id))[0].rc, 4);
    // The transfer completes in the background; HULFT then runs our post-send job, which settles it.
    await waitUntil(
      'the post-send job to settle the file',
      async () => {
        const f = await centre.files.require(id);
        return f.state !== 'unknown' && (f.state !== 'sent' || f.archived_at !== null);
      },
      120_000,
      250,
    );
    file = await centre.files.require(id);
    assert.equal(file.state, 'sent', file.reason ?? '');
    assert.ok(file.archived_at, 'archived like any delivered file');
    const [row] = await transfers(id);
    assert.equal(`${row.status}-${row.detail}`, '0-0');
    const delivery = await centre.ledger.db('deliveries').where({ file_id: id }).first();
    assert.equal(delivery.outcome, 'ok');
    // Running the job again changes nothing.
    process.env.TSUNAGI_LOG_LEVEL = 'error';
    const again = await hulftSent.run(['--file-id', 'TSG32A', '--host', 'ALPHA01', '--file', row.hulft_file_name, '--status', '0', '--detail', '0', `--msg0=${row.msg0}`, '--config', c.configFile]);
    assert.equal(again, 0);
    assert.equal((await centre.files.require(id)).state, 'sent');
    assert.equal((await transfers(id)).length, 1);
    await world.writeDefs(OUR_NODE, ourDefs(centre.config));
  });
});
