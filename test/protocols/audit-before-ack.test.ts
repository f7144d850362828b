// An upload is acknowledged only once its audit row is committed (PCI DSS 10.5), on every
// listener: the row is there the moment the client hears "done", and when the audit write fails
// (here: the audit table is gone) the upload is refused with the protocol's error and nothing is
// committed to inbound. SFTP and FTP on SQLite and PostgreSQL; 全銀, mail and the HULFT receive
// job on SQLite.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import pino from 'pino';
import * as ftp from 'basic-ftp';
import { createMailListener } from '../../protocols/mail/listener.ts';
import { mailListenerSchema } from '../../protocols/mail/config.ts';
import { ZenginClient } from '../../protocols/zengin/client.ts';
import { ZenginError } from '../../protocols/zengin/primary.ts';
import type { ProtocolListener } from '../../protocols/contract.ts';
import { ensureSelfSignedCert } from '../../jobs/keys.ts';
import { listAudit, verifyAuditChain, type Ledger } from '../../spool/ledger/index.ts';
import { SpoolTree } from '../../spool/tree.ts';
import { LEDGER_KINDS, type TestLedger } from '../helpers/ledgers.ts';
import { startSftpAndFtp, type PartnerListeners } from '../helpers/partner-listeners.ts';
import { makeFile, startHarness } from './zengin-helpers.ts';

/** Makes every audit write fail (the table is renamed away) for the length of `fn`. */
async function withAuditBroken(ledger: Ledger, fn: () => Promise<void>): Promise<void> {
  await ledger.db.schema.renameTable('audit', 'audit_away');
  try {
    await fn();
  } finally {
    await ledger.db.schema.renameTable('audit_away', 'audit');
  }
}

const visible = async (dir: string) => (await readdir(dir)).sort();

for (const [kind, make] of LEDGER_KINDS) {
  describe(`SFTP and FTP acknowledge an upload only after its audit row, on ${kind}`, () => {
    let t: TestLedger;
    let tmp: string;
    let spool: SpoolTree;
    let ftpL: ProtocolListener;
    let listeners: PartnerListeners;

    before(async () => {
      t = await make();
      tmp = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-ack-'));
      spool = new SpoolTree(path.join(tmp, 'spool'));
      await spool.ensure(['M001']);
      listeners = await startSftpAndFtp(tmp, { spool, ledger: t.ledger, log: pino({ level: 'silent' }) }, 'M001');
      ftpL = listeners.ftp;
    });
    after(async () => {
      await listeners?.stop();
      await t?.dispose();
      await rm(tmp, { recursive: true, force: true });
    });

    const sftpPut = (name: string, data: Buffer) =>
      listeners.sftpSession(async (sftp) => {
        const h = await new Promise<Buffer>((res, rej) => sftp.open(`/inbound/${name}`, 'w', (e, hd) => (e ? rej(e) : res(hd))));
        await new Promise<void>((res, rej) => sftp.write(h, data, 0, data.length, 0, (e) => (e ? rej(e) : res())));
        await new Promise<void>((res, rej) => sftp.close(h, (e) => (e ? rej(e) : res())));
      });
    async function ftpPut(name: string, data: Buffer): Promise<void> {
      const client = new ftp.Client(10_000);
      try {
        await client.access({ host: '127.0.0.1', port: ftpL.port, user: 'M001', password: listeners.password, secure: false });
        await client.uploadFrom(Readable.from([data]), `/inbound/${name}`);
      } finally {
        client.close();
      }
    }

    test('SFTP: the row is committed when the client hears OK; a failing audit write refuses the close', async () => {
      await sftpPut('OK.DAT', Buffer.alloc(4096, 0x31));
      const rows = await listAudit(t.ledger, { protocol: 'sftp' });
      assert.ok(rows.some((r) => r.event === 'upload' && r.detail === 'OK.DAT 4096 bytes'), 'the upload row exists at the ack (no waiting)');
      await withAuditBroken(t.ledger, async () => {
        await assert.rejects(sftpPut('LOST.DAT', Buffer.alloc(4096, 0x32)), /upload refused: the centre could not record it/);
        assert.deepEqual(await visible(spool.inbound('M001')), ['OK.DAT'], 'nothing else landed, no temporary left');
      });
      assert.equal((await verifyAuditChain(t.ledger)).ok, true);
    });

    test('FTP: the row is committed before 226; a failing audit write answers 550 and nothing lands', async () => {
      await ftpPut('FOK.DAT', Buffer.alloc(4096, 0x33));
      const rows = await listAudit(t.ledger, { protocol: 'ftp' });
      assert.ok(rows.some((r) => r.event === 'upload' && r.detail === 'FOK.DAT 4096 bytes'), 'the upload row exists at the ack');
      await withAuditBroken(t.ledger, async () => {
        await assert.rejects(ftpPut('FLOST.DAT', Buffer.alloc(4096, 0x34)), /550 upload refused: the centre could not record it/);
        assert.deepEqual(await visible(spool.inbound('M001')), ['FOK.DAT', 'OK.DAT']);
      });
      assert.equal((await verifyAuditChain(t.ledger)).ok, true);
    });
  });
}

describe('全銀 answers 終了回答 0x00 only after the audit row', () => {
  test('a failing audit write gets an error 終了回答 and nothing lands; the retry lands', async () => {
    const h = await startHarness();
    try {
      const src = path.join(h.dir, 'sales.dat');
      await writeFile(src, makeFile('31', 20, 200));
      const client = new ZenginClient(await h.endpoint());
      await withAuditBroken(h.ledger, async () => {
        await assert.rejects(client.push(src, 'ZGN310000001'), (e: unknown) => e instanceof ZenginError && e.result === 0x99);
        assert.deepEqual(await h.inbound(), []);
      });
      await client.push(src, 'ZGN310000001');
      assert.equal((await h.inbound()).length, 1);
      const uploads = (await listAudit(h.ledger, { protocol: 'zengin' })).filter((r) => r.event === 'upload');
      assert.equal(uploads.length, 1);
    } finally {
      await h.close();
    }
  });
});

describe('the mail channel answers 250 only after the audit row', () => {
  let tmp: string;
  let listener: ProtocolListener;
  let t: TestLedger;
  let spool: SpoolTree;
  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-ack-mail-'));
    await ensureSelfSignedCert(path.join(tmp, 'cert.pem'), path.join(tmp, 'key.pem'));
    await writeFile(path.join(tmp, 'pw'), 'mail-secret');
    t = await LEDGER_KINDS[0]![1]();
    spool = new SpoolTree(path.join(tmp, 'spool'));
    await spool.ensure(['m1']);
    listener = createMailListener(
      mailListenerSchema.parse({ port: 0, tls: { cert: { file: path.join(tmp, 'cert.pem') }, key: { file: path.join(tmp, 'key.pem') } } }),
      [{ partnerId: 'm1', user: 'm1', password: { file: path.join(tmp, 'pw') }, senders: ['shop@example.jp'] }],
      { spool, ledger: t.ledger, log: pino({ level: 'silent' }) },
    );
    await listener.start();
  });
  after(async () => {
    await listener?.stop();
    await t?.dispose();
    await rm(tmp, { recursive: true, force: true });
  });

  test('a failing audit write answers 451 and nothing lands', async () => {
    const eml = path.join(tmp, 'm.eml');
    await writeFile(
      eml,
      ['From: shop@example.jp', 'To: in@centre.example', 'Subject: sales', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary=b', '', '--b', 'Content-Type: text/plain', '', 'sales', '--b',
        'Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename=URIAGE.DAT', 'Content-Transfer-Encoding: base64', '', Buffer.alloc(300, 0x31).toString('base64'), '--b--', ''].join('\r\n'),
    );
    const send = () => promisify(execFile)('curl', ['-sS', '-v', '--max-time', '20', `smtp://127.0.0.1:${listener.port}`, '--ssl-reqd', '--insecure', '--user', 'm1:mail-secret', '--mail-from', 'shop@example.jp', '--mail-rcpt', 'in@centre.example', '-T', eml]);
    await withAuditBroken(t.ledger, async () => {
      await assert.rejects(send(), (e: { stderr?: string }) => /451/.test(String(e.stderr)));
      assert.deepEqual(await visible(spool.inbound('m1')), []);
    });
    await send();
    assert.deepEqual(await visible(spool.inbound('m1')), ['URIAGE.DAT']);
    assert.ok((await listAudit(t.ledger, { protocol: 'mail' })).some((r) => r.event === 'upload' && /URIAGE\.DAT \(300 bytes/.test(String(r.detail))));
  });
});
