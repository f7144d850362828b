// OpenSSH's own sftp client (batch mode) against our SFTP server: uploads land whole in the
// partner's inbound, downloads come from its outbound, escapes fail, and the ledger audits it all.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createSftpListener } from '../../protocols/sftp/listener.ts';
import { sftpAccountSchema, sftpListenerSchema } from '../../protocols/sftp/config.ts';
import { listAudit } from '../../spool/ledger/index.ts';
import type { ProtocolListener } from '../../protocols/contract.ts';
import { eventually, knownHostsLine, makeCentre, run, shiftJisSample, sshKeygen, type KeyPair, type TestCentre } from '../helpers/sshd.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('OpenSSH sftp against our SFTP server', () => {
  let centre: TestCentre;
  let listener: ProtocolListener;
  let tmp: string;
  let key: KeyPair;
  let stranger: KeyPair;
  let knownHosts: string;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-sftp-it-'));
    key = await sshKeygen(tmp, 'merchant_key');
    stranger = await sshKeygen(tmp, 'stranger_key');
    const host = await sshKeygen(tmp, 'host_key');
    centre = await makeCentre(['M001', 'M002']);
    listener = createSftpListener(
      sftpListenerSchema.parse({ port: 0, hostKey: { file: host.privatePath } }),
      [
        { partnerId: 'M001', ...sftpAccountSchema.parse({ publicKeys: [key.publicLine] }) },
        { partnerId: 'M002', ...sftpAccountSchema.parse({ publicKeys: [stranger.publicLine.replace('stranger', 'other')], user: 'm002' }) },
      ],
      centre.ctx,
    );
    await listener.start();
    knownHosts = path.join(tmp, 'known_hosts');
    await writeFile(knownHosts, knownHostsLine(listener.port, host.publicLine));
  });

  after(async () => {
    await listener?.stop();
    await centre?.cleanup();
    await rm(tmp, { recursive: true, force: true });
  });

  async function sftpBatch(commands: string[], identity = key.privatePath, user = 'M001') {
    const batch = path.join(tmp, `batch-${Math.random().toString(36).slice(2)}`);
    await writeFile(batch, commands.join('\n') + '\n');
    try {
      return await run('sftp', [
        '-b', batch,
        '-i', identity,
        '-P', String(listener.port),
        '-o', 'IdentitiesOnly=yes',
        '-o', 'BatchMode=yes',
        '-o', `UserKnownHostsFile=${knownHosts}`,
        '-o', 'StrictHostKeyChecking=yes',
        '-o', 'GlobalKnownHostsFile=/dev/null',
        `${user}@127.0.0.1`,
      ], { cwd: tmp });
    } finally {
      await rm(batch, { force: true });
    }
  }

  test('put lands the file whole in inbound, get fetches from outbound, both audited', async () => {
    const data = shiftJisSample(5000);
    await writeFile(path.join(tmp, 'URIAGE.DAT'), data);
    const result = Buffer.concat([data, Buffer.from('result\r\n')]);
    await writeFile(path.join(centre.spool.outbound('M001'), 'KEKKA.DAT'), result);

    await sftpBatch(['cd /inbound', 'put URIAGE.DAT', 'ls', 'cd /outbound', 'get KEKKA.DAT KEKKA.local']);

    const inbound = await readdir(centre.spool.inbound('M001'));
    assert.deepEqual(inbound, ['URIAGE.DAT'], 'only the finished file, no temporary');
    assert.equal(sha(await readFile(path.join(centre.spool.inbound('M001'), 'URIAGE.DAT'))), sha(data));
    assert.equal(sha(await readFile(path.join(tmp, 'KEKKA.local'))), sha(result));
    assert.deepEqual(centre.landed.map((l) => l.partnerId), ['M001']);
    assert.deepEqual(centre.pickedUp, [{ partnerId: 'M001', fileName: 'KEKKA.DAT', bytes: result.length }]);

    await eventually(async () => {
      const events = (await listAudit(centre.ledger, { partnerId: 'M001', protocol: 'sftp' })).map((r) => r.event);
      assert.deepEqual(events, ['login_ok', 'upload', 'download', 'session_end']);
    });
  });

  test('putting the same name again replaces the earlier copy', async () => {
    const v2 = Buffer.concat([shiftJisSample(10), Buffer.from('v2\r\n')]);
    await writeFile(path.join(tmp, 'URIAGE.DAT'), v2);
    await sftpBatch(['put URIAGE.DAT /inbound/URIAGE.DAT']);
    assert.deepEqual(await readdir(centre.spool.inbound('M001')), ['URIAGE.DAT']);
    assert.equal(sha(await readFile(path.join(centre.spool.inbound('M001'), 'URIAGE.DAT'))), sha(v2));
  });

  test('the root shows only inbound and outbound', async () => {
    const { stdout } = await sftpBatch(['ls -1 /']);
    const names = stdout.split('\n').filter((l) => l && !l.startsWith('sftp>')).map((l) => l.trim().replace(/^\//, ''));
    assert.deepEqual(names.sort(), ['inbound', 'outbound']);
  });

  const escapes: Array<[string, string[]]> = [
    ['get with ..', ['get /outbound/../../../../etc/passwd stolen']],
    ['get an absolute path outside the root', ['get /etc/passwd stolen']],
    ['cd above the root', ['cd ..', 'get etc/passwd stolen']],
    ['put outside inbound', ['put URIAGE.DAT /etc/tsunagi-escape']],
    ['put into outbound', ['put URIAGE.DAT /outbound/URIAGE.DAT']],
    ['put with ..', ['put URIAGE.DAT /inbound/../../M002/inbound/X.DAT']],
    ['get from inbound', ['get /inbound/URIAGE.DAT stolen']],
    ['symlink creation', ['symlink /etc/passwd /inbound/link']],
    ['get through a symlink planted in outbound', ['get /outbound/LINK.DAT stolen']],
    ['remove', ['rm /outbound/KEKKA.DAT']],
    ['mkdir', ['mkdir /inbound/sub']],
    ['dot file upload', ['put URIAGE.DAT /inbound/.hidden']],
  ];

  test('escape attempts fail and are audited', async (t) => {
    await symlink('/etc/passwd', path.join(centre.spool.outbound('M001'), 'LINK.DAT'));
    const refusedBefore = (await listAudit(centre.ledger, { partnerId: 'M001' })).filter((r) => r.event === 'refused').length;
    for (const [name, commands] of escapes) {
      await t.test(name, async () => {
        await assert.rejects(sftpBatch(commands), `${name} must fail`);
        await assert.rejects(readFile(path.join(tmp, 'stolen')), 'nothing fetched');
      });
    }
    await assert.rejects(readFile('/etc/tsunagi-escape'));
    assert.deepEqual(await readdir(centre.spool.inbound('M002')), []);
    assert.deepEqual(await readdir(centre.spool.inbound('M001')), ['URIAGE.DAT']);
    await eventually(async () => {
      const refused = (await listAudit(centre.ledger, { partnerId: 'M001' })).filter((r) => r.event === 'refused');
      // '..', symlink creation and the planted symlink are audited as refusals
      assert.ok(refused.length - refusedBefore >= 4, `refusals audited: ${refused.map((r) => r.detail).join('; ')}`);
    });
  });

  test('a key that is not the partner\'s is refused and audited', async () => {
    await assert.rejects(sftpBatch(['ls /'], stranger.privatePath));
    await eventually(async () => {
      const rows = await listAudit(centre.ledger, { protocol: 'sftp' });
      assert.ok(rows.some((r) => r.event === 'login_refused'), 'login_refused recorded');
    });
  });
});
