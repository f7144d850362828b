// A card company on 全銀TCP/IP: the deliver job calls it as 一次局 (連絡) with its 32 files, and the
// collect job asks it (照会) for its 33 results, which go back to the merchant.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { generateFile } from '../../formats/index.ts';
import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { runCycle } from '../../jobs/cycle.ts';
import { createLogger } from '../../jobs/log.ts';
import { createZenginListener } from '../../protocols/zengin/listener.ts';
import { openLedger } from '../../spool/ledger/index.ts';
import { SpoolTree } from '../../spool/tree.ts';
import { makeTestCentre, dropSalesFiles, merchantNo, type TestCentre } from '../helpers/centre.ts';
import { freePort } from '../helpers/sshd.ts';

const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });
const FILES = `[{ zenginName: URIAGE000032, accessKey: CC0001, fileType: "32", direction: send, recordLength: 200 }, { zenginName: KEKKA0000033, accessKey: CC0001, fileType: "33", direction: receive, recordLength: 200 }]`;

describe('card company on 全銀TCP/IP', () => {
  let c: TestCentre;
  after(async () => c && rm(c.dir, { recursive: true, force: true }));

  it('delivers 32 by 連絡 and collects 33 by 照会, byte for byte', async () => {
    c = await makeTestCentre({ merchants: 1, companies: 1 });
    const port = await freePort();
    await writeFile(path.join(c.dir, 'zengin.pw'), 'PASS01');
    const config = (await readFile(c.configFile, 'utf8')).replace(
      'delivery: { protocol: local, path: ./remote/cc1 } }',
      `collect: true, formats: { "32": { framing: none }, "33": { framing: none } }, delivery: { protocol: zengin, host: 127.0.0.1, port: ${port}, ownCode: "F0F0F0F0F0F0F1", partnerCode: "F2F0F0F0F0F0F1", password: { file: ./zengin.pw }, files: ${FILES} } }`,
    );
    await writeFile(c.configFile, config);

    // The card company's own secondary station, with its own spool and ledger.
    const companySpool = new SpoolTree(path.join(c.dir, 'company'));
    await companySpool.ensure(['tsunagi']);
    const companyLedger = await openLedger(`sqlite:${path.join(c.dir, 'company', 'ledger.db')}`);
    const station = createZenginListener(
      { host: '127.0.0.1', port, ownCode: 'F2F0F0F0F0F0F1' },
      {
        tsunagi: {
          partnerCode: 'F0F0F0F0F0F0F1',
          password: { file: path.join(c.dir, 'zengin.pw') },
          files: [
            { zenginName: 'URIAGE000032', accessKey: 'CC0001', fileType: '32', direction: 'send' },
            { zenginName: 'KEKKA0000033', accessKey: 'CC0001', fileType: '33', direction: 'receive' },
          ],
        },
      },
      { spool: companySpool, ledger: companyLedger, log: quiet() },
    );
    await station.start();
    const centre = await openCentre(c.configFile, { log: quiet() });
    const engine = await startEngine(centre);
    try {
      await dropSalesFiles(c, { records: 12 });
      const first = await runCycle(engine, { date: '20261126' });
      assert.equal(first.deliveriesFailed, 0);
      const out = (await centre.files.list({ partnerId: 'cc1', direction: 'out' }))[0]!;
      assert.equal(out.state, 'sent');
      const landed = await readdir(companySpool.inbound('tsunagi'));
      assert.equal(landed.length, 1);
      assert.ok((await readFile(path.join(companySpool.inbound('tsunagi'), landed[0]!))).equals(await readFile(out.path!)), 'the card company holds our bytes');

      // The company's results wait in its outbound folder for our 照会.
      await generateFile('33', { records: 7, seed: 5, merchantNo: merchantNo(0), cardCompanyCodes: ['001'], senderCode: '2000000001', receiverCode: '0000000001', framing: 'none', out: path.join(companySpool.outbound('tsunagi'), 'results.dat') });
      const second = await runCycle(engine, { date: '20261126' });
      assert.equal(second.filesIn, 1);
      assert.equal(second.recordsAccepted, 7);
      const results = (await readdir(c.remote('m001'))).filter((n) => n.startsWith('T33_'));
      assert.equal(results.length, 1, 'the merchant got its results');
      // Asking again finds nothing new: the station knows what we took.
      const third = await runCycle(engine, { date: '20261126' });
      assert.equal(third.filesIn, 0);
    } finally {
      await engine.stop();
      await centre.close();
      await station.stop();
      await companyLedger.close();
    }
  });
});
