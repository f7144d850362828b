// `serve` wiring: a merchant uploads over our SFTP server and the file goes through the pipeline;
// downloading an outbound file through the server is recorded as its pickup.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile, readFile, appendFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { generateFile } from '../../formats/index.ts';
import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { createListeners } from '../../jobs/listeners.ts';
import { createLogger } from '../../jobs/log.ts';
import { ensureSshKeyPair, knownHostsLine } from '../../jobs/keys.ts';
import { SftpClient } from '../../protocols/sftp/client.ts';
import { sftpEndpointSchema } from '../../protocols/sftp/config.ts';
import { makeTestCentre, type TestCentre } from '../helpers/centre.ts';
import { freePort } from '../helpers/sshd.ts';

const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

describe('listeners wired into the pipeline', () => {
  let c: TestCentre;
  after(async () => c && rm(c.dir, { recursive: true, force: true }));

  it('an SFTP upload is ingested and routed; an SFTP download is the pickup', async () => {
    c = await makeTestCentre({ merchants: 1, companies: 1 });
    const keys = path.join(c.dir, 'keys');
    await mkdir(keys);
    const host = await ensureSshKeyPair(path.join(keys, 'host'), 'host');
    const merchant = await ensureSshKeyPair(path.join(keys, 'm001'), 'm001');
    const port = await freePort();
    // m001 picks up over SFTP instead of having files pushed.
    const config = (await readFile(c.configFile, 'utf8')).replace(
      'delivery: { protocol: local, path: ./remote/m001 } }',
      `delivery: { protocol: pull }, sftp: { publicKeys: ["${merchant.publicLine}"] } }`,
    );
    await writeFile(c.configFile, config);
    await appendFile(c.configFile, `listeners: { sftp: { port: ${port}, hostKey: { file: ./keys/host } } }\n`);
    await writeFile(path.join(keys, 'known_hosts'), knownHostsLine('127.0.0.1', port, host.publicLine));

    const centre = await openCentre(c.configFile, { log: quiet() });
    const engine = await startEngine(centre);
    const listeners = await createListeners(engine);
    for (const l of listeners) await l.start();
    const client = (folder: string) =>
      new SftpClient(
        sftpEndpointSchema.parse({ protocol: 'sftp', host: '127.0.0.1', port, user: 'm001', path: folder, privateKey: { file: path.join(keys, 'm001') }, knownHosts: path.join(keys, 'known_hosts') }),
        centre.log,
      );
    try {
      const local = path.join(c.dir, 'upload.dat');
      await generateFile('31', { records: 15, seed: 3, errors: true, merchantNo: '100000000000001', senderCode: '1000000001', cardCompanyCodes: ['001'], out: local });
      const up = client('/inbound');
      await up.push(local, 'URIAGE.dat');
      await up.close();
      // The landing triggered a scan; let the pipeline finish.
      for (let i = 0; i < 100 && (await centre.files.list({ direction: 'out' })).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      await engine.drain();
      const inbound = await centre.files.list({ direction: 'in' });
      assert.equal(inbound.length, 1);
      assert.equal(inbound[0]!.name, 'URIAGE.dat');
      assert.equal(inbound[0]!.state, 'routed');
      const notice = (await centre.files.list({ partnerId: 'm001', direction: 'out' }))[0]!;
      assert.equal(notice.file_type, '91');
      assert.equal(notice.state, 'ready', 'waits for the pull');

      const down = client('/outbound');
      const offered = await down.list();
      assert.deepEqual(offered.map((f) => f.name), [notice.name]);
      await down.pull(notice.name, path.join(c.dir, 'got.dat'));
      await down.close();
      for (let i = 0; i < 100 && (await centre.files.require(notice.id)).state !== 'sent'; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal((await centre.files.require(notice.id)).state, 'sent');
      const pickup = await centre.ledger.db('deliveries').where({ file_id: notice.id }).first();
      assert.equal(pickup.outcome, 'picked_up');
      const audit = await centre.ledger.db('audit').where({ partner_id: 'm001' }).orderBy('id').pluck('event');
      assert.ok(audit.includes('upload') && audit.includes('download') && audit.includes('login_ok'), audit.join(','));
    } finally {
      for (const l of listeners) await l.stop();
      await engine.stop();
      await centre.close();
    }
  });
});
