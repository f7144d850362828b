// curl (ftp:// and explicit FTPS with --ssl-reqd) and lftp against our FTP server: uploads land
// whole, downloads come from outbound, plain FTP only for a plain account, escapes fail, a
// dropped upload leaves nothing, and the ledger audits it all.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createFtpListener } from '../../protocols/ftp/listener.ts';
import { ftpAccountSchema, ftpListenerSchema } from '../../protocols/ftp/config.ts';
import { listAudit } from '../../spool/ledger/index.ts';
import type { ProtocolListener } from '../../protocols/contract.ts';
import { eventually, freePort, makeCentre, run, selfSignedCert, shiftJisSample, type TestCentre } from '../helpers/sshd.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('curl and lftp against our FTP server', () => {
  let centre: TestCentre;
  let listener: ProtocolListener;
  let tmp: string;
  let tls: { cert: string; key: string };
  let base: string;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-ftp-it-'));
    tls = await selfSignedCert(tmp);
    await writeFile(path.join(tmp, 'pw1'), 'kamome-1\n');
    await writeFile(path.join(tmp, 'pw2'), 'tsubame-2\n');
    centre = await makeCentre(['M001', 'M002']);
    const pasvMin = await freePort();
    listener = createFtpListener(
      ftpListenerSchema.parse({ port: 0, pasvMin, pasvMax: Math.min(pasvMin + 20, 65535), tls: { cert: { file: tls.cert }, key: { file: tls.key } } }),
      [
        { partnerId: 'M001', ...ftpAccountSchema.parse({ password: { file: path.join(tmp, 'pw1') } }) },
        { partnerId: 'M002', ...ftpAccountSchema.parse({ password: { file: path.join(tmp, 'pw2') }, plain: true }) },
      ],
      centre.ctx,
    );
    await listener.start();
    base = `ftp://127.0.0.1:${listener.port}`;
  });

  after(async () => {
    await listener?.stop();
    await centre?.cleanup();
    await rm(tmp, { recursive: true, force: true });
  });

  const ftps = ['--ssl-reqd', '--cacert', '', '--user', 'M001:kamome-1'];
  const curlFtps = (...args: string[]) => {
    ftps[2] = tls.cert;
    return run('curl', ['-sS', '--fail', '--max-time', '20', ...ftps, ...args], { cwd: tmp });
  };

  test('curl over explicit FTPS uploads to inbound and downloads from outbound', async () => {
    const data = shiftJisSample(20_000);
    await writeFile(path.join(tmp, 'URIAGE.DAT'), data);
    const result = Buffer.concat([data, Buffer.from('KEKKA\r\n')]);
    await writeFile(path.join(centre.spool.outbound('M001'), 'KEKKA.DAT'), result);

    await curlFtps('-T', 'URIAGE.DAT', `${base}/inbound/URIAGE.DAT`);
    await curlFtps('-o', 'KEKKA.local', `${base}/outbound/KEKKA.DAT`);

    assert.deepEqual(await readdir(centre.spool.inbound('M001')), ['URIAGE.DAT']);
    assert.equal(sha(await readFile(path.join(centre.spool.inbound('M001'), 'URIAGE.DAT'))), sha(data));
    assert.equal(sha(await readFile(path.join(tmp, 'KEKKA.local'))), sha(result));
    assert.equal(centre.landed.length, 1);
    assert.deepEqual(centre.pickedUp, [{ partnerId: 'M001', fileName: 'KEKKA.DAT', bytes: result.length }]);
    await eventually(async () => {
      const events = (await listAudit(centre.ledger, { partnerId: 'M001', protocol: 'ftp' })).map((r) => r.event);
      assert.deepEqual(events, ['login_ok', 'upload', 'session_end', 'login_ok', 'download', 'session_end']);
    });
  });

  test('plain FTP is refused for an FTPS account and accepted for a plain one', async () => {
    await assert.rejects(run('curl', ['-sS', '--fail', '--max-time', '10', '--user', 'M001:kamome-1', `${base}/outbound/`]));
    await eventually(async () => {
      const rows = await listAudit(centre.ledger, { partnerId: 'M001' });
      assert.ok(rows.some((r) => r.event === 'login_refused' && String(r.detail).includes('FTPS required')));
    });
    const data = shiftJisSample(300);
    await writeFile(path.join(tmp, 'PLAIN.DAT'), data);
    await run('curl', ['-sS', '--fail', '--max-time', '10', '--user', 'M002:tsubame-2', '-T', path.join(tmp, 'PLAIN.DAT'), `${base}/inbound/PLAIN.DAT`]);
    assert.equal(sha(await readFile(path.join(centre.spool.inbound('M002'), 'PLAIN.DAT'))), sha(data));
  });

  test('a wrong password is refused and audited', async () => {
    await assert.rejects(run('curl', ['-sS', '--fail', '--max-time', '10', '--ssl-reqd', '--cacert', tls.cert, '--user', 'M001:wrong', `${base}/`]));
    await eventually(async () => {
      const rows = await listAudit(centre.ledger, { partnerId: 'M001' });
      assert.ok(rows.some((r) => r.event === 'login_refused' && String(r.detail).includes('wrong password')));
    });
  });

  test('lftp over FTPS: put, ls, get', async () => {
    const data = shiftJisSample(40_000);
    await writeFile(path.join(tmp, 'LFTP.DAT'), data);
    const script = [
      'set ftp:ssl-force true',
      'set ftp:ssl-protect-data true',
      `set ssl:ca-file ${tls.cert}`,
      'set net:max-retries 1',
      `open -u M001,kamome-1 -p ${listener.port} 127.0.0.1`,
      'put LFTP.DAT -o /inbound/LFTP.DAT',
      'cls -1 /outbound/',
      'get /outbound/KEKKA.DAT -o LFTP-KEKKA.local',
    ].join('; ');
    const { stdout } = await run('lftp', ['-c', script], { cwd: tmp, timeout: 30_000 });
    assert.match(stdout, /KEKKA\.DAT/);
    assert.equal(sha(await readFile(path.join(centre.spool.inbound('M001'), 'LFTP.DAT'))), sha(data));
    assert.equal(sha(await readFile(path.join(tmp, 'LFTP-KEKKA.local'))), sha(await readFile(path.join(centre.spool.outbound('M001'), 'KEKKA.DAT'))));
  });

  test('escape attempts fail and are audited', async (t) => {
    await symlink('/etc/passwd', path.join(centre.spool.outbound('M001'), 'LINK.DAT'));
    await writeFile(path.join(tmp, 'X.DAT'), 'x');
    const attempts: Array<[string, string[]]> = [
      ['RETR with .. (no CWD)', ['--path-as-is', '--ftp-method', 'nocwd', '-o', 'stolen', `${base}/outbound/../../../etc/passwd`]],
      ['CWD .. then RETR', ['--path-as-is', '-o', 'stolen', `${base}/outbound/../../etc/passwd`]],
      ['absolute path outside the root', ['--ftp-method', 'nocwd', '-o', 'stolen', `${base}//etc/passwd`]],
      ['RETR through a symlink in outbound', ['-o', 'stolen', `${base}/outbound/LINK.DAT`]],
      ['STOR outside inbound', ['--ftp-method', 'nocwd', '-T', 'X.DAT', `${base}//tmp/tsunagi-escape.DAT`]],
      ['STOR into outbound', ['-T', 'X.DAT', `${base}/outbound/X.DAT`]],
      ['STOR with ..', ['--path-as-is', '--ftp-method', 'nocwd', '-T', 'X.DAT', `${base}/inbound/../outbound/X.DAT`]],
      ['RETR from inbound', ['-o', 'stolen', `${base}/inbound/URIAGE.DAT`]],
      ['DELE', ['-Q', 'DELE /outbound/KEKKA.DAT', `${base}/`]],
      ['MKD', ['-Q', 'MKD /inbound/sub', `${base}/`]],
    ];
    for (const [name, args] of attempts) {
      await t.test(name, async () => {
        await assert.rejects(curlFtps(...args), `${name} must fail`);
        await assert.rejects(readFile(path.join(tmp, 'stolen')), 'nothing fetched');
      });
    }
    await assert.rejects(readFile('/tmp/tsunagi-escape.DAT'));
    assert.deepEqual((await readdir(centre.spool.outbound('M001'))).sort(), ['KEKKA.DAT', 'LINK.DAT']);
    await eventually(async () => {
      const refused = (await listAudit(centre.ledger, { partnerId: 'M001' })).filter((r) => r.event === 'refused');
      assert.ok(refused.length >= 4, `refusals audited: ${refused.map((r) => r.detail).join('; ')}`);
    });
  });

  test('curl killed in the middle of an upload leaves nothing in inbound', async () => {
    const big = Buffer.alloc(8 << 20, 0x41);
    await writeFile(path.join(tmp, 'BIG.DAT'), big);
    const before = (await listAudit(centre.ledger, { partnerId: 'M001' })).length;
    const curl = spawn('curl', ['-sS', ...ftps, '--limit-rate', '1M', '-T', 'BIG.DAT', `${base}/inbound/BIG.DAT`], { cwd: tmp, stdio: 'ignore' });
    const exited = new Promise((r) => curl.once('exit', r));
    // wait until the upload is under way (a temporary appears), then kill the client outright
    await eventually(async () => assert.ok((await readdir(centre.spool.inbound('M001'))).some((n) => n.includes('BIG.DAT'))), 10_000);
    await new Promise((r) => setTimeout(r, 500));
    curl.kill('SIGKILL');
    await exited;
    await eventually(async () => assert.ok(!(await readdir(centre.spool.inbound('M001'))).some((n) => n.includes('BIG.DAT'))));
    await eventually(async () => {
      const rows = (await listAudit(centre.ledger, { partnerId: 'M001' })).slice(before);
      assert.ok(rows.some((r) => r.event === 'refused' && String(r.detail).includes('BIG.DAT')), JSON.stringify(rows));
      assert.ok(!rows.some((r) => r.event === 'upload'));
    });
  });
});
