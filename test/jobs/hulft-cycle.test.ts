// A card company on HULFT through whole `tsunagi cycle` runs, against the stand-in
// (test/fakes/hulft: NOT HULFT): the first cycle delivers its 32 with utlsend; the second asks
// for its 33 with utlrecv, lands it through the post-receive job and routes it to the merchant.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { Writable } from 'node:stream';
import { generateFile } from '../../formats/index.ts';
import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { runCycle } from '../../jobs/cycle.ts';
import { createLogger } from '../../jobs/log.ts';
import { makeTestCentre, dropSalesFiles, merchantNo, type TestCentre } from '../helpers/centre.ts';
import { makeHulftWorld, ourDefs, OUR_NODE, TSUNAGI_JS } from '../helpers/hulft.ts';
import { command as show } from '../../scripts/commands/show.ts';

const run = promisify(execFile);
const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

describe('card company on HULFT through tsunagi cycle', () => {
  let c: TestCentre;
  after(async () => c && rm(c.dir, { recursive: true, force: true }));

  it('receives its 32 by utlsend and returns its 33 by utlrecv + hulft-received, each once', async () => {
    c = await makeTestCentre({ merchants: 1, companies: 1 });
    const world = await makeHulftWorld(c.dir);
    const rcvDir = path.join(c.dir, 'hulft', 'rcv');
    const alpha = (...p: string[]) => path.join(c.dir, 'alpha01', ...p);
    await mkdir(rcvDir, { recursive: true });
    const text = (await readFile(c.configFile, 'utf8'))
      .replace('workers: { concurrency: 2 }', `workers: { concurrency: 2, threads: 0 }\n${world.centreYaml()}`)
      .replace(
        'delivery: { protocol: local, path: ./remote/cc1 } }',
        `collect: true, delivery: { protocol: hulft }, hulft: { host: ALPHA01, send: [{ fileId: TSG32A, fileTypes: ["32", "41"], fileName: ${c.dir}/unused/TSG32A, transferType: binary, codeConversion: none, jobs: { success: TSGSENT, failure: TSGSENT } }], receive: [{ fileId: TSG33A, fileTypes: ["33"], fileName: ${rcvDir}/TSG33A, generations: 9999, notify: job, jobs: { success: TSGRCVOK, failure: TSGRCVNG } }] } }`,
      );
    await writeFile(c.configFile, text);
    const leave = world.enter();
    try {
      const centre = await openCentre(c.configFile, { log: quiet() });
      await world.writeDefs(OUR_NODE, ourDefs(centre.config));
      await centre.close();
      await world.writeDefs('ALPHA01', {
        receive: [{ fileId: 'TSG32A', fileName: alpha('rcv', 'TSG32A'), mode: 'new', generations: 99, onError: 'delete', notify: 'job', jobs: { success: 'ALPHAIN' } }],
        send: [{ fileId: 'TSG33A', fileName: alpha('snd', 'TSG33A'), transferType: 'binary', codeConversion: 'none' }],
        jobs: { ALPHAIN: [`echo "$FILEID $FILENM $MSG0" >> ${alpha('received.txt')}`] },
      });
      const cycle = async () => {
        const { stdout } = await run(process.execPath, [TSUNAGI_JS, 'cycle', '--date', '20261126', '--json', '--config', c.configFile], { env: { ...process.env, TSUNAGI_LOG_LEVEL: 'error' } });
        return JSON.parse(stdout) as { filesIn: number; recordsAccepted: number; deliveriesOk: number; deliveriesFailed: number; filesOut: Record<string, number> };
      };

      await dropSalesFiles(c, { records: 12 });
      // The first night in this process (the same runCycle as the CLI's), the second through the CLI.
      const check = await openCentre(c.configFile, { log: quiet() });
      const engine = await startEngine(check);
      try {
        const first = await runCycle(engine, { date: '20261126' });
        assert.equal(first.deliveriesFailed, 0);
        const out = (await check.files.list({ partnerId: 'cc1', direction: 'out' }))[0]!;
        assert.equal(out.file_type, '32');
        assert.equal(out.state, 'sent', out.reason ?? '');
        const got = await readdir(alpha('rcv'));
        assert.equal(got.length, 1, 'the card company got one 32');
        assert.ok((await readFile(alpha('rcv', got[0]!))).equals(await readFile(out.path!)), 'byte for byte');
        assert.match(await readFile(alpha('received.txt'), 'utf8'), /^TSG32A \S+TSG32A\.0001 TSG\d+\n$/, "the card company's job saw our msg0");
      } finally {
        await engine.stop();
        await check.close();
      }

      // The card company's results wait for our 送信要求.
      await mkdir(alpha('snd'), { recursive: true });
      await generateFile('33', { records: 7, seed: 5, merchantNo: merchantNo(0), cardCompanyCodes: ['001'], senderCode: '2000000001', receiverCode: '0000000001', out: alpha('snd', 'TSG33A') });
      const second = await cycle();
      assert.equal(second.filesIn, 1);
      assert.equal(second.recordsAccepted, 7);
      const results = (await readdir(c.remote('m001'))).filter((n) => n.startsWith('T33_'));
      assert.equal(results.length, 1, 'the merchant got its results');
      assert.deepEqual(await readdir(rcvDir), [], "HULFT's copy was taken");

      // tsunagi show prints what HULFT told the job.
      const view = await openCentre(c.configFile, { log: quiet() });
      let inId: string;
      try {
        const inbound = (await view.files.list({ partnerId: 'cc1', direction: 'in' }))[0]!;
        assert.equal(inbound.state, 'routed');
        assert.match(inbound.name, /^TSG33A\.[0-9a-f]{16}$/);
        inId = inbound.id;
      } finally {
        await view.close();
      }
      let printed = '';
      const write = process.stdout.write.bind(process.stdout);
      process.stdout.write = ((chunk: string) => ((printed += chunk), true)) as typeof process.stdout.write;
      try {
        assert.equal(await show.run([inId, '--config', c.configFile]), 0);
      } finally {
        process.stdout.write = write;
      }
      assert.match(printed, /\nhulft\n/);
      assert.match(printed, /receive\s+TSG33A\s+ALPHA01\s+0-0\s+10\s+\d+\s+TSG[0-9a-f]+\s+landed/, printed);
    } finally {
      leave();
    }
  });
});
