// Uploads on every listener: a per-partner size limit (a sparse 10 GiB write included), a disk
// free-space reserve below which uploads are refused with a protocol error, and the purge of
// temporaries that no upload will finish.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { SFTPWrapper } from 'ssh2';
import * as ftp from 'basic-ftp';
import { ZenginClient } from '../../protocols/zengin/client.ts';
import { ZenginError } from '../../protocols/zengin/primary.ts';
import type { LandingLimits } from '../../spool/landing.ts';
import { purgeOrphans } from '../../spool/orphans.ts';
import { SpoolTree } from '../../spool/tree.ts';
import { parseConfig } from '../../jobs/config.ts';
import { uploadLimits } from '../../jobs/security-config.ts';
import type { ProtocolListener } from '../../protocols/contract.ts';
import { eventually, makeCentre, type TestCentre } from '../helpers/sshd.ts';
import { startSftpAndFtp, type PartnerListeners } from '../helpers/partner-listeners.ts';
import { listAudit } from '../../spool/ledger/index.ts';
import { makeFile, startHarness } from './zengin-helpers.ts';

const MiB = 2 ** 20;
const HUGE_RESERVE = 2 ** 60; // more than any disk has free

describe('upload limits on the SFTP and FTP listeners', () => {
  let centre: TestCentre;
  let ftpL: ProtocolListener;
  let tmp: string;
  let limits: LandingLimits = {};
  let listeners: PartnerListeners;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-limits-'));
    centre = await makeCentre(['M001']);
    centre.ctx.limitsFor = () => limits;
    listeners = await startSftpAndFtp(tmp, centre.ctx, 'M001');
    ftpL = listeners.ftp;
  });
  after(async () => {
    await listeners?.stop();
    await centre?.cleanup();
    await rm(tmp, { recursive: true, force: true });
  });

  const inbound = async () => (await readdir(centre.spool.inbound('M001'))).filter((n) => !n.startsWith('.'));

  const sftpSession = <T>(fn: (sftp: SFTPWrapper) => Promise<T>) => listeners.sftpSession(fn);
  const sftpOpen = (sftp: SFTPWrapper, p: string) => new Promise<Buffer>((res, rej) => sftp.open(p, 'w', (e, h) => (e ? rej(e) : res(h))));
  const sftpWrite = (sftp: SFTPWrapper, h: Buffer, data: Buffer, at: number) =>
    new Promise<void>((res, rej) => sftp.write(h, data, 0, data.length, at, (e) => (e ? rej(e) : res())));
  const sftpClose = (sftp: SFTPWrapper, h: Buffer) => new Promise<void>((res, rej) => sftp.close(h, (e) => (e ? rej(e) : res())));

  test('SFTP: over the partner limit, and a sparse write at 10 GiB, are refused; under it lands', async () => {
    limits = { maxBytes: 1 * MiB };
    await sftpSession(async (sftp) => {
      const h = await sftpOpen(sftp, '/inbound/BIG.DAT');
      const chunk = Buffer.alloc(32 * 1024, 0x31);
      let err: Error | undefined;
      for (let at = 0; at < 2 * MiB && !err; at += chunk.length) err = await sftpWrite(sftp, h, chunk, at).then(() => undefined, (e: Error) => e);
      assert.match(String(err?.message), /file too large: at most 1048576 bytes/);
      await assert.rejects(sftpClose(sftp, h));
      const sparse = await sftpOpen(sftp, '/inbound/SPARSE.DAT');
      await assert.rejects(sftpWrite(sftp, sparse, Buffer.from('x'), 10 * 2 ** 30), /file too large/);
      await assert.rejects(sftpClose(sftp, sparse));
      const ok = await sftpOpen(sftp, '/inbound/SMALL.DAT');
      await sftpWrite(sftp, ok, Buffer.alloc(MiB, 0x32), 0);
      await sftpClose(sftp, ok);
    });
    assert.deepEqual(await inbound(), ['SMALL.DAT']);
    assert.deepEqual((await readdir(centre.spool.inbound('M001'))).filter((n) => n.startsWith('.')), [], 'refused uploads leave no temporary');
    await rm(path.join(centre.spool.inbound('M001'), 'SMALL.DAT'));
  });

  test('SFTP: below the free-space reserve an upload is refused at open', async () => {
    limits = { reserveBytes: HUGE_RESERVE };
    await sftpSession(async (sftp) => {
      await assert.rejects(sftpOpen(sftp, '/inbound/FULL.DAT'), /insufficient storage: upload refused/);
    });
    assert.deepEqual(await inbound(), []);
  });

  const ftpUpload = async (bytes: number, name: string) => {
    const client = new ftp.Client(10_000);
    try {
      await client.access({ host: '127.0.0.1', port: ftpL.port, user: 'M001', password: listeners.password, secure: false });
      await client.uploadFrom(Readable.from([Buffer.alloc(bytes, 0x33)]), `/inbound/${name}`);
    } finally {
      client.close();
    }
  };

  test('FTP: over the limit and below the reserve are refused with the reason', async () => {
    limits = { maxBytes: 1 * MiB };
    // The data connection is cut at the limit (the client may see that before the 550).
    await assert.rejects(ftpUpload(2 * MiB, 'BIG.DAT'), /550 file too large|ECONNRESET/);
    await eventually(async () => {
      const rows = await listAudit(centre.ledger, { protocol: 'ftp' });
      assert.ok(rows.some((r) => r.event === 'refused' && /BIG\.DAT aborted: file too large/.test(String(r.detail))));
    });
    limits = { reserveBytes: HUGE_RESERVE };
    await assert.rejects(ftpUpload(1000, 'FULL.DAT'), /insufficient storage/);
    limits = { maxBytes: 1 * MiB };
    await ftpUpload(1000, 'OK.DAT');
    assert.deepEqual(await inbound(), ['OK.DAT']);
  });
});

describe('upload limits on the 全銀 listener', () => {
  test('a file over the limit is refused at 開始要求; below the reserve too; no partial is kept', async () => {
    let limits: LandingLimits = { maxBytes: 100 * 200 };
    const h = await startHarness({ limitsFor: () => limits });
    try {
      const src = path.join(h.dir, 'sales.dat');
      await writeFile(src, makeFile('31', 500, 200));
      const client = new ZenginClient(await h.endpoint());
      await assert.rejects(client.push(src, 'ZGN310000001'), (e: unknown) => e instanceof ZenginError && e.result === 0x99);
      limits = { reserveBytes: HUGE_RESERVE };
      await assert.rejects(client.push(src, 'ZGN310000001'), (e: unknown) => e instanceof ZenginError && e.result === 0x99);
      assert.deepEqual(await h.inbound(), []);
      assert.deepEqual(await readdir(path.join(h.spool.work, 'zengin-partial', 'merchant1')).catch(() => []), [], 'no partial kept for a refused file');
      limits = { maxBytes: 1000 * 200 };
      await client.push(src, 'ZGN310000001');
      assert.equal((await h.inbound()).length, 1);
    } finally {
      await h.close();
    }
  });
});

describe('config and orphan purge', () => {
  test('uploads: sizes in units, a partner override, defaults', () => {
    const cfg = parseConfig(
      [
        'centre: { code: "0000000001", name: X }',
        'uploads: { maxBytes: 512MiB, freeSpaceReserve: "2 GiB" }',
        'partners:',
        '  - { id: m1, name: M, role: merchant, code: "1000000001", merchantNos: ["1"], send: ["31"], maxUploadBytes: 10MiB }',
        '  - { id: m2, name: M, role: merchant, code: "1000000002", merchantNos: ["2"], send: ["31"] }',
      ].join('\n'),
      '/tmp/x.yaml',
    );
    assert.deepEqual(uploadLimits(cfg.uploads, cfg.partners[0]!.maxUploadBytes), { maxBytes: 10 * MiB, reserveBytes: 2 * 2 ** 30 });
    assert.deepEqual(uploadLimits(cfg.uploads, cfg.partners[1]!.maxUploadBytes), { maxBytes: 512 * MiB, reserveBytes: 2 * 2 ** 30 });
    assert.equal(cfg.uploads.orphanGraceHours, 24);
    const defaults = parseConfig('centre: { code: "0000000001", name: X }\n', '/tmp/x.yaml');
    assert.deepEqual(defaults.uploads, { maxBytes: 4 * 2 ** 30, freeSpaceReserve: 2 ** 30, orphanGraceHours: 24 });
  });

  test('temporaries older than the grace go; fresh ones, finished files and live claim notes stay', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-orphans-'));
    try {
      const tree = new SpoolTree(root);
      await tree.ensure(['m1']);
      const old = new Date(Date.now() - 48 * 3600_000);
      const put = async (p: string, aged: boolean) => {
        await writeFile(p, 'x');
        if (aged) await utimes(p, old, old);
      };
      await put(path.join(tree.inbound('m1'), '.URIAGE.DAT.0a1b2c3d.part'), true); // ours, after a crash
      await put(path.join(tree.inbound('m1'), 'client-upload.part'), true); // the client's own
      await put(path.join(tree.inbound('m1'), 'busy.tmp'), false); // still being written
      await put(path.join(tree.inbound('m1'), 'URIAGE.DAT'), true); // a finished file: not ours to purge
      await put(path.join(tree.outbound('m1'), '.KEKKA.DAT.ffffffff.part'), true);
      await put(path.join(tree.work, '.Iabc@m1.name'), true); // a note whose file is gone
      await put(path.join(tree.work, 'Idef@m1'), true);
      await put(path.join(tree.work, '.Idef@m1.name'), true); // a note whose file is still there
      const removed = await purgeOrphans(tree, ['m1'], 24 * 3600_000);
      assert.deepEqual(removed.map((p) => path.relative(root, p)).sort(), [
        'partners/m1/inbound/.URIAGE.DAT.0a1b2c3d.part',
        'partners/m1/inbound/client-upload.part',
        'partners/m1/outbound/.KEKKA.DAT.ffffffff.part',
        'work/.Iabc@m1.name',
      ]);
      assert.deepEqual((await readdir(tree.inbound('m1'))).sort(), ['URIAGE.DAT', 'busy.tmp']);
      assert.deepEqual((await readdir(tree.work)).sort(), ['.Idef@m1.name', 'Idef@m1']);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
