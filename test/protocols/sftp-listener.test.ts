// Our SFTP server driven by an ssh2 client at the request level: a dropped upload leaves nothing,
// the session limit, the idle timeout, and passwords only where the account allows them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { SFTPWrapper } from 'ssh2';
import { createSftpListener } from '../../protocols/sftp/listener.ts';
import { sftpAccountSchema, sftpListenerSchema } from '../../protocols/sftp/config.ts';
import { listAudit } from '../../spool/ledger/index.ts';
import type { ProtocolListener } from '../../protocols/contract.ts';
import { eventually, makeCentre, shiftJisSample, sshKeygen, type KeyPair, type TestCentre } from '../helpers/sshd.ts';

describe('SFTP listener', () => {
  let centre: TestCentre;
  let listener: ProtocolListener;
  let tmp: string;
  let key: KeyPair;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-sftpl-'));
    key = await sshKeygen(tmp, 'merchant');
    const host = await sshKeygen(tmp, 'host');
    await writeFile(path.join(tmp, 'pw'), 'correct horse\n');
    centre = await makeCentre(['M001', 'M002', 'M003']);
    listener = createSftpListener(
      sftpListenerSchema.parse({ port: 0, hostKey: { file: host.privatePath }, idleTimeoutSeconds: 2, maxSessionsPerPartner: 1 }),
      [
        { partnerId: 'M001', ...sftpAccountSchema.parse({ publicKeys: [key.publicLine] }) },
        // a password that is configured but not allowed: never honoured
        { partnerId: 'M002', ...sftpAccountSchema.parse({ publicKeys: [key.publicLine.replace(/\S+$/, 'm2')], user: 'm002', password: { file: path.join(tmp, 'pw') } }) },
        { partnerId: 'M003', ...sftpAccountSchema.parse({ allowPassword: true, password: { file: path.join(tmp, 'pw') } }) },
      ],
      centre.ctx,
    );
    await listener.start();
  });

  after(async () => {
    await listener?.stop();
    await centre?.cleanup();
    await rm(tmp, { recursive: true, force: true });
  });

  function connect(auth: { username: string; privateKey?: Buffer; password?: string }): Promise<{ conn: ssh2.Client; sftp: SFTPWrapper }> {
    return new Promise((resolve, reject) => {
      const conn = new ssh2.Client();
      conn.once('error', reject);
      conn.once('ready', () => conn.sftp((err, sftp) => (err ? reject(err) : resolve({ conn, sftp }))));
      conn.connect({ host: '127.0.0.1', port: listener.port, hostVerifier: () => true, readyTimeout: 5000, ...auth });
    });
  }

  test('a connection dropped in the middle of an upload leaves nothing in inbound', async () => {
    const { conn, sftp } = await connect({ username: 'M001', privateKey: await readFile(key.privatePath) });
    const handle = await new Promise<Buffer>((res, rej) => sftp.open('/inbound/DROPPED.DAT', 'w', (e, h) => (e ? rej(e) : res(h))));
    const chunk = shiftJisSample(1000);
    await new Promise<void>((res, rej) => sftp.write(handle, chunk, 0, chunk.length, 0, (e) => (e ? rej(e) : res())));
    // while the handle is open the partner's inbound shows no finished file
    assert.deepEqual((await readdir(centre.spool.inbound('M001'))).filter((n) => !n.startsWith('.')), []);
    conn.end(); // gone without CLOSE
    await eventually(async () => assert.deepEqual(await readdir(centre.spool.inbound('M001')), []));
    await eventually(async () => {
      const rows = await listAudit(centre.ledger, { partnerId: 'M001' });
      assert.ok(rows.some((r) => r.event === 'refused' && String(r.detail).includes('DROPPED.DAT')));
      assert.ok(!rows.some((r) => r.event === 'upload'));
    });
    assert.deepEqual(centre.landed, []);
  });

  test('a second concurrent session for the partner is refused', async () => {
    const pk = await readFile(key.privatePath);
    const first = await connect({ username: 'M001', privateKey: pk });
    try {
      await assert.rejects(connect({ username: 'M001', privateKey: pk }), /authentication/i);
    } finally {
      first.conn.end();
    }
    await eventually(async () => {
      const rows = await listAudit(centre.ledger, { partnerId: 'M001' });
      assert.ok(rows.some((r) => r.event === 'login_refused' && String(r.detail).includes('too many sessions')));
    });
    // once the first has gone, a new one is welcome again
    await eventually(async () => void (await connect({ username: 'M001', privateKey: pk })).conn.end());
  });

  test('an idle session is closed', async () => {
    const { conn } = await connect({ username: 'M001', privateKey: await readFile(key.privatePath) });
    const closedAt = await new Promise<number>((resolve) => conn.once('close', () => resolve(Date.now())));
    assert.ok(closedAt > 0);
    await eventually(async () => {
      const rows = await listAudit(centre.ledger, { partnerId: 'M001' });
      assert.ok(rows.some((r) => r.event === 'session_end' && r.detail === 'idle timeout'));
    });
  });

  test('a password is honoured only where the account allows it', async () => {
    await assert.rejects(connect({ username: 'm002', password: 'correct horse' }), /authentication/i);
    await assert.rejects(connect({ username: 'M003', password: 'wrong' }), /authentication/i);
    const ok = await connect({ username: 'M003', password: 'correct horse' });
    ok.conn.end();
    await eventually(async () => {
      const rows = await listAudit(centre.ledger, { partnerId: 'M003' });
      assert.deepEqual(rows.filter((r) => r.event.startsWith('login')).map((r) => r.event), ['login_refused', 'login_ok']);
    });
  });
});
