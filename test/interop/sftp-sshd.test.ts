// Our SftpClient against a real OpenSSH sshd on a loopback port: push (temporary name, rename,
// replace), pull, list, known_hosts enforcement, and a clean retry after a broken connection.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile, chown, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { SftpClient } from '../../protocols/sftp/client.ts';
import { sftpEndpointSchema, type SftpEndpoint } from '../../protocols/sftp/config.ts';
import { HostKeyError } from '../../protocols/sftp/known-hosts.ts';
import { sha256File } from '../../spool/checksum.ts';
import { knownHostsLine, run, shiftJisSample, sshKeygen, startSshd, type KeyPair, type TestSshd } from '../helpers/sshd.ts';

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

describe('SftpClient against OpenSSH sshd', () => {
  let sshd: TestSshd;
  let tmp: string;
  let key: KeyPair;
  let endpoint: SftpEndpoint;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-sftpc-'));
    key = await sshKeygen(tmp, 'centre_key');
    sshd = await startSshd([key.publicLine]);
    const uid = Number((await run('id', ['-u', sshd.user])).stdout.trim());
    for (const d of ['drop', 'results']) {
      await mkdir(path.join(sshd.home, d));
      await chown(path.join(sshd.home, d), uid, uid);
    }
    endpoint = sftpEndpointSchema.parse({
      protocol: 'sftp',
      host: '127.0.0.1',
      port: sshd.port,
      user: sshd.user,
      path: path.join(sshd.home, 'drop'),
      pullPath: path.join(sshd.home, 'results'),
      privateKey: { file: key.privatePath },
      knownHosts: sshd.knownHosts,
      timeoutSeconds: 10,
    });
  });

  after(async () => {
    await sshd?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  test('push lands the whole file under its name, twice leaves one copy', async () => {
    const local = path.join(tmp, 'CARD01.DAT');
    await writeFile(local, shiftJisSample(50_000)); // 1.6 MB
    const client = new SftpClient(endpoint, log);
    try {
      const first = await client.push(local, 'CARD01.DAT');
      assert.equal(first.bytes, (await stat(local)).size);
      await writeFile(local, shiftJisSample(60_000));
      await client.push(local, 'CARD01.DAT');
    } finally {
      await client.close();
    }
    const drop = path.join(sshd.home, 'drop');
    assert.deepEqual(await readdir(drop), ['CARD01.DAT']);
    assert.equal((await sha256File(path.join(drop, 'CARD01.DAT'))).sha256, (await sha256File(local)).sha256);
  });

  test('list and pull fetch the partner\'s results byte for byte', async () => {
    const results = path.join(sshd.home, 'results');
    const data = shiftJisSample(30_000);
    await writeFile(path.join(results, 'KEKKA01.DAT'), data);
    await writeFile(path.join(results, '.KEKKA02.DAT.part'), 'half');
    const client = new SftpClient(endpoint, log);
    try {
      const listed = await client.list();
      assert.deepEqual(listed.map((f) => [f.name, f.size]), [['KEKKA01.DAT', data.length]]);
      const local = path.join(tmp, 'KEKKA01.local');
      const got = await client.pull('KEKKA01.DAT', local);
      assert.equal(got.bytes, data.length);
      assert.ok(Buffer.compare(await readFile(local), data) === 0);
    } finally {
      await client.close();
    }
  });

  test('an unknown host key is refused', async () => {
    const other = await sshKeygen(tmp, 'not_the_host');
    const knownHosts = path.join(tmp, 'wrong_known_hosts');
    await writeFile(knownHosts, knownHostsLine(sshd.port, other.publicLine));
    const client = new SftpClient({ ...endpoint, knownHosts }, log);
    await assert.rejects(client.list(), HostKeyError);
    await client.close();
    const empty = path.join(tmp, 'empty_known_hosts');
    await writeFile(empty, '');
    const blind = new SftpClient({ ...endpoint, knownHosts: empty }, log);
    await assert.rejects(blind.list(), HostKeyError);
    await blind.close();
  });

  test('after a broken connection the next operation reconnects and succeeds', async () => {
    const local = path.join(tmp, 'RETRY.DAT');
    await writeFile(local, shiftJisSample(20_000));
    const client = new SftpClient(endpoint, log);
    try {
      await client.list(); // connected
      // Break the TCP connection under the client, as a network failure would.
      const inner = client as unknown as { conn?: { client: { _sock?: { destroy(): void } } } };
      assert.ok(inner.conn?.client._sock, 'test reaches the socket');
      inner.conn.client._sock.destroy();
      await client.push(local, 'RETRY.DAT').catch(() => undefined); // may fail: the connection is gone
      await client.push(local, 'RETRY.DAT'); // must succeed on a fresh connection
    } finally {
      await client.close();
    }
    const drop = await readdir(path.join(sshd.home, 'drop'));
    assert.ok(drop.includes('RETRY.DAT'));
    assert.ok(!drop.some((n) => n.endsWith('.part')), `no temporary left: ${drop}`);
  });

  test('operations on one client are serialized', async () => {
    const client = new SftpClient(endpoint, log);
    const local = path.join(tmp, 'PAR.DAT');
    await writeFile(local, shiftJisSample(10_000));
    try {
      const names = ['PAR1.DAT', 'PAR2.DAT', 'PAR3.DAT'];
      await Promise.all([...names.map((n) => client.push(local, n)), client.list()]);
      const drop = await readdir(path.join(sshd.home, 'drop'));
      for (const n of names) assert.ok(drop.includes(n));
    } finally {
      await client.close();
    }
  });
});
