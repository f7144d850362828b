// FtpClient (basic-ftp) against our FTP server: explicit FTPS with a CA file, push through a
// temporary name and rename (twice leaves one copy), list, pull, and refusals.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { FtpClient } from '../../protocols/ftp/client.ts';
import { createFtpListener } from '../../protocols/ftp/listener.ts';
import { ftpAccountSchema, ftpEndpointSchema, ftpListenerSchema, type FtpEndpoint } from '../../protocols/ftp/config.ts';
import type { ProtocolListener } from '../../protocols/contract.ts';
import { freePort, makeCentre, selfSignedCert, shiftJisSample, type TestCentre } from '../helpers/sshd.ts';

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

describe('FtpClient against our FTP server', () => {
  let centre: TestCentre;
  let listener: ProtocolListener;
  let tmp: string;
  let endpoint: FtpEndpoint;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-ftpc-'));
    const tls = await selfSignedCert(tmp);
    await writeFile(path.join(tmp, 'pw'), 'hayabusa-3\n');
    centre = await makeCentre(['C001']);
    const pasvMin = await freePort();
    listener = createFtpListener(
      ftpListenerSchema.parse({ port: 0, pasvMin, pasvMax: Math.min(pasvMin + 20, 65535), tls: { cert: { file: tls.cert }, key: { file: tls.key } } }),
      [{ partnerId: 'C001', ...ftpAccountSchema.parse({ password: { file: path.join(tmp, 'pw') } }) }],
      centre.ctx,
    );
    await listener.start();
    endpoint = ftpEndpointSchema.parse({
      protocol: 'ftp',
      host: '127.0.0.1',
      port: listener.port,
      user: 'C001',
      password: { file: path.join(tmp, 'pw') },
      ca: tls.cert,
      path: '/inbound',
      pullPath: '/outbound',
      timeoutSeconds: 10,
    });
  });

  after(async () => {
    await listener?.stop();
    await centre?.cleanup();
    await rm(tmp, { recursive: true, force: true });
  });

  test('push twice to the same name leaves one whole copy; list and pull', async () => {
    const local = path.join(tmp, 'SEIKYU.DAT');
    const client = new FtpClient(endpoint, log);
    try {
      await writeFile(local, shiftJisSample(30_000));
      await client.push(local, 'SEIKYU.DAT');
      const v2 = shiftJisSample(31_000);
      await writeFile(local, v2);
      const r = await client.push(local, 'SEIKYU.DAT');
      assert.equal(r.bytes, v2.length);
      assert.deepEqual(await readdir(centre.spool.inbound('C001')), ['SEIKYU.DAT']);
      assert.ok(Buffer.compare(await readFile(path.join(centre.spool.inbound('C001'), 'SEIKYU.DAT')), v2) === 0);

      const result = shiftJisSample(7_000);
      await writeFile(path.join(centre.spool.outbound('C001'), 'KEKKA.DAT'), result);
      assert.deepEqual((await client.list()).map((f) => [f.name, f.size]), [['KEKKA.DAT', result.length]]);
      const got = path.join(tmp, 'KEKKA.local');
      assert.equal((await client.pull('KEKKA.DAT', got)).bytes, result.length);
      assert.ok(Buffer.compare(await readFile(got), result) === 0);
    } finally {
      await client.close();
    }
    // the temporary upload was not announced as a landed file, the renamed one was
    assert.ok(centre.landed.every((l) => !l.finalPath.endsWith('.part')));
  });

  test('a server certificate not signed by the configured CA is refused', async () => {
    const other = await selfSignedCert(await mkdtemp(path.join(tmp, 'other-')));
    const client = new FtpClient({ ...endpoint, ca: other.cert }, log);
    await assert.rejects(client.list(), /certificate|self.signed/i);
    await client.close();
  });

  test('plain FTP to an FTPS-only account is refused', async () => {
    const client = new FtpClient({ ...endpoint, secure: 'none' }, log);
    await assert.rejects(client.list(), /530|TLS/);
    await client.close();
  });
});
