// tsunagi hulft-received (spec hulft.md §4): landing exactly once, re-runs converging, a crash
// between rename and ledger row repaired, the failure job, bad paths and exit statuses; then
// through the stand-in (test/fakes/hulft: NOT HULFT) with the real job lines: generations,
// JOBWAIT=J with the job failing (exit 5) and the resend landing once, and a pull by utlrecv.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, rm, symlink, utimes, writeFile, copyFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { Writable } from 'node:stream';
import { generateFile } from '../../formats/index.ts';
import { openCentre, type Centre } from '../../jobs/centre.ts';
import { startEngine, type Engine } from '../../jobs/engine.ts';
import { jobId } from '../../jobs/context.ts';
import { createLogger } from '../../jobs/log.ts';
import { pathExists } from '../../spool/atomic.ts';
import { makeTestCentre, merchantNo, type TestCentre } from '../helpers/centre.ts';
import { FAKE_HULFT_BIN, TSUNAGI_JS, makeHulftWorld, ourDefs, OUR_NODE, type HulftWorld } from '../helpers/hulft.ts';
import { command as hulftReceived } from '../../scripts/commands/hulft-received.ts';
import { HulftJobError, landHulftReceipt } from '../../protocols/hulft/receive.ts';
import { hulftPartners } from '../../scripts/lib/hulft-job.ts';
import { listAudit } from '../../spool/ledger/index.ts';

const run = promisify(execFile);
const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('tsunagi hulft-received', () => {
  let c: TestCentre;
  let world: HulftWorld;
  let centre: Centre;
  let engine: Engine;
  let leave: () => void;
  let seed = 100;
  let rcvDir: string;
  let inbound: string;

  before(async () => {
    c = await makeTestCentre({ merchants: 1, companies: 1 });
    world = await makeHulftWorld(c.dir);
    rcvDir = path.join(c.dir, 'hulft', 'rcv');
    let text = await readFile(c.configFile, 'utf8');
    text = text
      .replace('workers: { concurrency: 2 }', `workers: { concurrency: 2, threads: 0 }\n${world.centreYaml()}`)
      .replace(
        'delivery: { protocol: local, path: ./remote/cc1 } }',
        `collect: true, delivery: { protocol: hulft }, hulft: { host: ALPHA01, send: [{ fileId: TSG32A, fileTypes: ["32", "41"], fileName: ${c.dir}/unused/TSG32A, transferType: binary, codeConversion: none }], receive: [{ fileId: TSG33A, fileTypes: ["33"], fileName: ${rcvDir}/TSG33A, mode: new, generations: 9999, onError: delete, notify: job, jobs: { success: TSGRCVOK, failure: TSGRCVNG } }] } }`,
      );
    await writeFile(c.configFile, text);
    await mkdir(rcvDir, { recursive: true });
    leave = world.enter();
    process.env.TSUNAGI_LOG_LEVEL = 'error';
    centre = await openCentre(c.configFile, { log: quiet() });
    engine = await startEngine(centre);
    inbound = centre.spool.inbound('cc1');
    await world.writeDefs(OUR_NODE, ourDefs(centre.config));
    await world.writeDefs('ALPHA01', { send: [{ fileId: 'TSG33A', fileName: path.join(c.dir, 'alpha01', 'snd', 'TSG33A'), transferType: 'binary', codeConversion: 'none' }] });
  });

  after(async () => {
    await engine?.stop();
    await centre?.close();
    leave?.();
    if (c) await rm(c.dir, { recursive: true, force: true });
  });

  async function results(out: string): Promise<Buffer> {
    await mkdir(path.dirname(out), { recursive: true });
    await generateFile('33', { records: 3, seed: seed++, merchantNo: merchantNo(0), cardCompanyCodes: ['001'], senderCode: '2000000001', receiverCode: '0000000001', out });
    return readFile(out);
  }

  const job = (file: string, ...more: string[]) =>
    hulftReceived.run(['--file-id', 'TSG33A', '--file', file, '--host', 'ALPHA01', '--status', '0', '--detail', '0', '--msg0=TSG77', '--count', '3', ...more, '--config', c.configFile]);
  const rowsFor = (digest: string) => centre.ledger.db('files').where({ partner_id: 'cc1', direction: 'in', sha256: digest });
  const landings = (digest: string) => centre.ledger.db('hulft_transfers').where({ partner_id: 'cc1', sha256: digest, outcome: 'landed' });

  it('lands a file once, under <FILEID>.<sha256[0:16]>, with what HULFT told the job; deletes $FILENM', async () => {
    const filenm = path.join(rcvDir, 'TSG33A.0001');
    const bytes = await results(filenm);
    assert.equal(await job(filenm), 0);
    const name = `TSG33A.${sha(bytes).slice(0, 16)}`;
    assert.ok((await readFile(path.join(inbound, name))).equals(bytes));
    const [file] = await rowsFor(sha(bytes));
    assert.equal(file.state, 'received');
    assert.equal(file.path, path.join(inbound, name));
    const [row] = await landings(sha(bytes));
    assert.deepEqual([row.status, row.detail, Number(row.record_count), row.msg0, row.host, row.hulft_file_name, Number(row.size), row.file_id], ['0', '0', 3, 'TSG77', 'ALPHA01', filenm, bytes.length, file.id]);
    assert.equal(await pathExists(filenm), false, "HULFT's copy is deleted (TRANSMODE N would refuse the next one)");

    // The same job again (HULFT's retry, an operator): nothing new.
    await writeFile(filenm, bytes);
    assert.equal(await job(filenm), 0);
    assert.equal((await rowsFor(sha(bytes))).length, 1);
    assert.equal((await landings(sha(bytes))).length, 1);
    assert.equal((await readdir(inbound)).filter((n) => n === name).length, 1);
    assert.equal(await pathExists(filenm), false);

    // The scan leaves it to ingest: it does not claim it as a second arrival.
    await engine.enqueue({ kind: 'scan', input: {}, jobId: jobId('scan', 'test', Date.now()) });
    await engine.drain();
    const after = await rowsFor(sha(bytes));
    assert.equal(after.length, 1);
    assert.equal(after[0].state, 'routed', after[0].reason);
  });

  it('a crash between the rename and the ledger row is repaired by running the job again', async () => {
    const filenm = path.join(rcvDir, 'TSG33A.0002');
    const bytes = await results(filenm);
    const name = `TSG33A.${sha(bytes).slice(0, 16)}`;
    await copyFile(filenm, path.join(inbound, name)); // what the crashed run left: renamed, no row, $FILENM still there
    assert.equal(await job(filenm), 0);
    assert.equal((await rowsFor(sha(bytes))).length, 1);
    assert.equal((await landings(sha(bytes))).length, 1);
    assert.deepEqual((await readdir(inbound)).filter((n) => n.startsWith('TSG33A.') && n.includes(sha(bytes).slice(0, 16))), [name]);

    // Nobody re-ran the job for a long while: the scan took the orphan as an ordinary arrival; the late re-run links it.
    const filenm3 = path.join(rcvDir, 'TSG33A.0003');
    const bytes3 = await results(filenm3);
    const orphan = path.join(inbound, `TSG33A.${sha(bytes3).slice(0, 16)}`);
    await copyFile(filenm3, orphan);
    const old = new Date(Date.now() - 11 * 60_000);
    await utimes(orphan, old, old);
    await engine.enqueue({ kind: 'scan', input: {}, jobId: jobId('scan', 'orphan', Date.now()) });
    await engine.drain();
    assert.equal((await rowsFor(sha(bytes3))).length, 1, 'the scan landed the orphan once');
    assert.equal(await job(filenm3), 0);
    assert.equal((await rowsFor(sha(bytes3))).length, 1, 'the re-run did not land it again');
    assert.equal((await landings(sha(bytes3)))[0].file_id, (await rowsFor(sha(bytes3)))[0].id);
    assert.equal(await pathExists(filenm3), false);
  });

  it('a file over the partner size limit exits 5 and lands nothing; a failing audit write too; the audit row commits with the landing', async () => {
    const filenm = path.join(rcvDir, 'TSG33A.0090');
    const bytes = await results(filenm);
    const before = (await readdir(inbound)).length;
    const deps = { ledger: centre.ledger, spool: centre.spool, log: quiet(), partners: hulftPartners(centre) };
    const args = { fileId: 'TSG33A', file: filenm, host: 'ALPHA01', status: '0', detail: '0', msg0: 'TSG90' };
    await assert.rejects(landHulftReceipt({ ...deps, limitsFor: () => ({ maxBytes: 10 }) }, args), (e: unknown) => e instanceof HulftJobError && e.exitCode === 5 && /file too large/.test(e.message));
    assert.equal((await readdir(inbound)).length, before, 'nothing landed');
    assert.equal(await pathExists(filenm), true, "HULFT's copy stays for the retry");
    await centre.ledger.db.schema.renameTable('audit', 'audit_away');
    try {
      assert.equal(await job(filenm), 5, 'no audit row, no exit 0');
    } finally {
      await centre.ledger.db.schema.renameTable('audit_away', 'audit');
    }
    assert.equal((await readdir(inbound)).length, before, 'the file was taken back out of inbound');
    assert.equal((await rowsFor(sha(bytes))).length, 0);
    assert.equal(await job(filenm), 0);
    const [file] = await rowsFor(sha(bytes));
    const audit = (await listAudit(centre.ledger, { protocol: 'hulft' })).filter((r) => r.event === 'upload' && r.detail?.includes(`file ${file.id}`));
    assert.equal(audit.length, 1);
    assert.equal(audit[0]!.partner_id, 'cc1');
  });

  it('two runs at once for the same bytes: one lands, the other finds it landed', async () => {
    const a = path.join(rcvDir, 'TSG33A.0004');
    const bytes = await results(a);
    const b = path.join(rcvDir, 'TSG33A.0005');
    await writeFile(b, bytes);
    // Two processes, as HULFT would start them (better-sqlite3 blocks its thread while it waits for a lock).
    const cli = (file: string) =>
      run(process.execPath, [TSUNAGI_JS, 'hulft-received', '--file-id', 'TSG33A', '--file', file, '--host', 'ALPHA01', '--status', '0', '--detail', '0', '--msg0=TSG78', '--config', c.configFile]).then(
        () => 0,
        (err: { code?: number }) => err.code ?? -1,
      );
    const codes = await Promise.all([cli(a), cli(b)]);
    assert.deepEqual(codes, [0, 0]);
    assert.equal((await rowsFor(sha(bytes))).length, 1);
    assert.equal((await landings(sha(bytes))).length, 1);
    assert.equal((await readdir(inbound)).filter((n) => n.includes(sha(bytes).slice(0, 16))).length, 1);
  });

  it('--failed (集信異常時ジョブ) records hulft.receive_failed and touches no file', async () => {
    const filenm = path.join(rcvDir, 'TSG33A.0006');
    await results(filenm);
    assert.equal(await hulftReceived.run(['--file-id', 'TSG33A', '--file', filenm, '--host', 'ALPHA01', '--status', '250', '--detail', '205', '--msg0=TSG88', '--failed', '--config', c.configFile]), 0);
    const row = await centre.ledger.db('hulft_transfers').where({ msg0: 'TSG88' }).first();
    assert.deepEqual([row.outcome, row.status, row.detail, row.host], ['receive_failed', '250', '205', 'ALPHA01']);
    assert.equal(await pathExists(filenm), true, 'ABNORMAL decides what happens to the file, not tsunagi');
    // A non-zero $STATUS means the same, with or without --failed.
    assert.equal(await hulftReceived.run(['--file-id', 'TSG33A', '--file', filenm, '--host', 'ALPHA01', '--status', '9', '--detail', '1', '--msg0=TSG89', '--config', c.configFile]), 0);
    assert.equal((await centre.ledger.db('hulft_transfers').where({ msg0: 'TSG89' }).first()).outcome, 'receive_failed');
    await rm(filenm);
  });

  it('exit 2 for an unknown ID or host and a bad path, 4 when $FILENM is missing, 5 when the ledger is down', async () => {
    const filenm = path.join(rcvDir, 'TSG33A.0007');
    await results(filenm);
    assert.equal(await hulftReceived.run(['--file-id', 'TSG33A', '--file', filenm, '--host', 'NOBODY', '--status', '0', '--config', c.configFile]), 2);
    assert.equal(await hulftReceived.run(['--file-id', 'NOSUCH', '--file', filenm, '--host', 'ALPHA01', '--status', '0', '--config', c.configFile]), 2);
    const outside = path.join(c.dir, 'elsewhere.dat');
    await copyFile(filenm, outside);
    assert.equal(await job(outside), 2);
    const link = path.join(rcvDir, 'TSG33A.0008');
    await symlink(outside, link);
    assert.equal(await job(link), 2);
    assert.equal(await pathExists(outside), true);
    const dir = path.join(rcvDir, 'TSG33A.0009');
    await mkdir(dir);
    assert.equal(await job(dir), 2);
    assert.equal(await job(path.join(rcvDir, 'TSG33A.0010')), 4);
    const down = path.join(c.dir, 'ledger-down.yaml');
    await writeFile(down, (await readFile(c.configFile, 'utf8')).replace(/^ledger: .*$/m, 'ledger: sqlite:./spool'));
    assert.equal(await hulftReceived.run(['--file-id', 'TSG33A', '--file', filenm, '--host', 'ALPHA01', '--status', '0', '--config', down]), 5);
    assert.equal(await pathExists(filenm), true, 'nothing deleted when nothing landed');
    for (const p of [filenm, link, dir, outside]) await rm(p, { recursive: true, force: true });
  });

  /** The card company's HULFT sends TSG33A to us; our HULFT runs our job lines. */
  const partnerSends = (args: string[]) =>
    run(path.join(FAKE_HULFT_BIN, 'utlsend'), args, { env: { ...process.env, FAKE_HULFT_SELF: 'ALPHA01', HULPATH: world.etcDir } }).then(
      () => 0,
      (err: { code?: number }) => err.code ?? -1,
    );

  it('through HULFT: generations give each receive its own name; JOBWAIT=J makes a failed job (exit 5) fail the transfer, and the resend lands once', async () => {
    const snd = path.join(c.dir, 'alpha01', 'snd', 'TSG33A');
    const first = await results(snd);
    assert.equal(await partnerSends(['-f', 'TSG33A', '-h', OUR_NODE, '-sync', '-w', '120']), 0);
    const second = await results(snd);
    // Our spool cannot take it now (the partner's work folder is a file): the job exits 5.
    const work = path.join(centre.spool.partnerDir('cc1'), 'work');
    await rm(work, { recursive: true, force: true });
    await writeFile(work, 'in the way');
    assert.equal(await partnerSends(['-f', 'TSG33A', '-h', OUR_NODE, '-sync', '-w', '120']), 21, 'the sender sees the failed job as a failed transfer');
    const jobs = await world.log(OUR_NODE, 'job');
    assert.equal(jobs.at(-1)!.rc, 5, String(jobs.at(-1)!.stderr));
    await rm(work);
    assert.equal(await partnerSends(['-r', OUR_NODE, '-f', 'TSG33A', '-sync', '-w', '120']), 0, 'the resend goes through');
    const rcv = (await world.log(OUR_NODE, 'rcv')).slice(-3);
    const names = rcv.map((r) => r.fileName as string);
    assert.equal(new Set(names).size, 3, `each receive had its own generation: ${names.join(', ')}`);
    assert.ok(names.every((n) => /TSG33A\.\d{4}$/.test(n)));
    for (const bytes of [first, second]) {
      assert.equal((await landings(sha(bytes))).length, 1);
      assert.equal((await rowsFor(sha(bytes))).length, 1);
    }
    // The generation the failed job left behind: running its job now finds the bytes landed.
    const leftover = names[1]!;
    assert.equal(await pathExists(leftover), true);
    assert.equal(await job(leftover), 0);
    assert.equal((await rowsFor(sha(second))).length, 1);
    assert.equal(await pathExists(leftover), false);
  });

  it('pull: collect asks with utlrecv; what the partner sends lands through the post-receive job', async () => {
    const bytes = await results(path.join(c.dir, 'alpha01', 'snd', 'TSG33A'));
    const mark = (await world.log(OUR_NODE, 'cmd')).length;
    await engine.enqueue({ kind: 'collect', input: {}, jobId: jobId('collect', 'test', Date.now()) });
    await engine.drain();
    const cmds = (await world.log(OUR_NODE, 'cmd')).slice(mark);
    const recv = cmds.find((x) => x.command === 'utlrecv')!;
    assert.deepEqual(cmds.map((x) => x.command), ['utlalivecheck', 'utlrecv']);
    assert.deepEqual(cmds[0]!.argv, ['-h', 'ALPHA01', '-p', '31000', '-w', '10']);
    const argv = recv.argv as string[];
    assert.deepEqual([argv[0], argv[1], argv[2], argv[3], argv[4]], ['-f', 'TSG33A', '-h', 'ALPHA01', '-msg0']);
    assert.match(argv[5]!, /^TSG[0-9a-f]+$/);
    assert.deepEqual(argv.slice(6), ['-sync', '-w', '3']);
    assert.equal(recv.rc, 0);
    assert.equal((await landings(sha(bytes))).length, 1);
    const request = await centre.ledger.db('hulft_transfers').where({ msg0: argv[5] }).orderBy('id').first();
    assert.equal(request.outcome, 'landed');
  });
});

describe('tsunagi hulft-received on PostgreSQL', () => {
  it('lands once, a re-run finds it landed, --failed is recorded', async () => {
    const { postgresLedger } = await import('../helpers/ledgers.ts');
    const pg = await postgresLedger();
    await pg.ledger.close();
    const c = await makeTestCentre({ merchants: 1, companies: 1, ledger: pg.url });
    const rcvDir = path.join(c.dir, 'hulft', 'rcv');
    await mkdir(rcvDir, { recursive: true });
    const text = (await readFile(c.configFile, 'utf8'))
      .replace('workers: { concurrency: 2 }', `workers: { concurrency: 2, threads: 0 }\nhulft: { binDir: ${FAKE_HULFT_BIN}, etcDir: ${c.dir} }`)
      .replace('delivery: { protocol: local, path: ./remote/cc1 } }', `delivery: { protocol: local, path: ./remote/cc1 }, hulft: { host: ALPHA01, receive: [{ fileId: TSG33A, fileTypes: ["33"], fileName: ${rcvDir}/TSG33A, generations: 99, notify: job, jobs: { success: OK, failure: NG } }] } }`);
    await writeFile(c.configFile, text);
    const centre = await openCentre(c.configFile, { log: quiet() });
    try {
      const filenm = path.join(rcvDir, 'TSG33A.0001');
      await mkdir(rcvDir, { recursive: true });
      await generateFile('33', { records: 2, seed: 9, merchantNo: merchantNo(0), cardCompanyCodes: ['001'], senderCode: '2000000001', receiverCode: '0000000001', out: filenm });
      const bytes = await readFile(filenm);
      const args = ['--file-id', 'TSG33A', '--file', filenm, '--host', 'alpha01', '--status', '0', '--detail', '0', '--msg0=TSG5', '--config', c.configFile];
      assert.equal(await hulftReceived.run(args), 0);
      await writeFile(filenm, bytes);
      assert.equal(await hulftReceived.run(args), 0);
      const files = await centre.ledger.db('files').where({ sha256: sha(bytes) });
      assert.equal(files.length, 1);
      assert.equal(files[0].state, 'received');
      assert.equal((await centre.ledger.db('hulft_transfers').where({ sha256: sha(bytes), outcome: 'landed' })).length, 1);
      assert.equal(await hulftReceived.run([...args.slice(0, -2), '--failed', '--config', c.configFile]), 0);
      assert.equal((await centre.ledger.db('hulft_transfers').where({ outcome: 'receive_failed' })).length, 1);
    } finally {
      await centre.close();
      await rm(c.dir, { recursive: true, force: true });
      await pg.dispose().catch(() => undefined);
    }
  });
});
