// The mail channel with curl as the merchant's mail client: STARTTLS, SMTP AUTH per merchant, a
// sales file attached and landed, refused mails (no TLS, wrong password, unknown sender, no
// AUTH); and the notice mails that follow through a smarthost: a link to the portal, never a file.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { SMTPServer } from 'smtp-server';
import { simpleParser, type ParsedMail } from 'mailparser';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type { AddressInfo } from 'node:net';
import { generateFile, redactCardNumbers } from '../../formats/index.ts';
import { ensureSelfSignedCert } from '../../jobs/keys.ts';
import { listAudit } from '../../spool/ledger/index.ts';
import { tokyoDate } from '../../spool/tree.ts';
import { startPortalCentre, type PortalCentre } from '../web/portal-centre.ts';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';

const run = promisify(execFile);

async function curl(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const r = await run('curl', ['-sS', '-v', '--max-time', '30', ...args]);
    return { code: 0, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

/** A smarthost that keeps what it is given (STARTTLS required, like the real one). */
async function startSmarthost(keyDir: string): Promise<{ port: number; mails: ParsedMail[]; stop(): Promise<void> }> {
  await ensureSelfSignedCert(path.join(keyDir, 'smarthost.pem'), path.join(keyDir, 'smarthost.key'));
  const mails: ParsedMail[] = [];
  const server = new SMTPServer({
    secure: false,
    key: await readFile(path.join(keyDir, 'smarthost.key')),
    cert: await readFile(path.join(keyDir, 'smarthost.pem')),
    authOptional: true,
    logger: false,
    onMailFrom(_a, session, done) {
      done(session.secure ? undefined : Object.assign(new Error('STARTTLS first'), { responseCode: 530 }));
    },
    onData(stream, _session, done) {
      simpleParser(stream).then((m) => (mails.push(m), done()), done);
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.server.address() as AddressInfo).port, mails, stop: () => new Promise<void>((r) => server.close(() => r())) };
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('mail channel with curl', { timeout: 90_000 }, () => {
  let c: PortalCentre;
  let smarthost: Awaited<ReturnType<typeof startSmarthost>>;
  let keyDir: string;
  let eml: string;
  const smtp = () => `smtp://127.0.0.1:${c.mailPort}`;
  const ok = ['--ssl-reqd', '--insecure', '--user', 'm-tokyo:tokyo-mail-secret'];

  before(async () => {
    keyDir = await mkdtemp(path.join(tmpdir(), 'tsunagi-smarthost-'));
    smarthost = await startSmarthost(keyDir);
    c = await startPortalCentre({ smarthostPort: smarthost.port, smarthostCa: path.join(keyDir, 'smarthost.pem') });
    const notifier = c.services.notifier!;
    assert.ok(notifier);
    const sales = path.join(c.dir, 'URIAGE_MAIL.dat');
    await generateFile('31', { records: 40, seed: 11, errors: true, merchantNo: '101000000000001', senderCode: '1000000001', receiverCode: '0000000001', fileSeq: 5, cardCompanyCodes: ['001'], createdDate: tokyoDate(new Date()), out: sales });
    const message = await new MailComposer({
      from: 'uriage@tokyo.example', to: 'upload@centre.example', subject: '売上ファイル', text: '本日分です。',
      attachments: [{ filename: 'URIAGE_MAIL.dat', content: await readFile(sales) }],
    }).compile().build();
    eml = path.join(c.dir, 'mail.eml');
    await writeFile(eml, message);
  });

  after(async () => {
    await c?.stop();
    await smarthost?.stop();
    if (c) await rm(c.dir, { recursive: true, force: true });
    if (keyDir) await rm(keyDir, { recursive: true, force: true });
  });

  it('takes a sales file by mail over STARTTLS with SMTP AUTH and lands it for ingest', async () => {
    const r = await curl([smtp(), ...ok, '--mail-from', 'uriage@tokyo.example', '--mail-rcpt', 'upload@centre.example', '-T', eml]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /< 250 .*Accepted URIAGE_MAIL\.dat: https:\/\/127\.0\.0\.1:\d+\/portal\/uploads\/[0-9a-f]+/);
    const file = await until('the mailed file to be routed', async () => (await c.centre.files.list({ partnerId: 'm-tokyo', direction: 'in' })).find((f) => f.name === 'URIAGE_MAIL.dat' && f.state === 'routed'));
    assert.equal(file.record_count, 40);
    const upload = await c.centre.ledger.db('web_uploads').where({ partner_id: 'm-tokyo', channel: 'mail' }).first();
    assert.equal(upload.sha256, file.sha256);
    const audit = await listAudit(c.centre.ledger, { protocol: 'mail' });
    assert.ok(audit.some((a) => a.event === 'login_ok' && a.partner_id === 'm-tokyo'));
    assert.ok(audit.some((a) => a.event === 'upload' && /URIAGE_MAIL\.dat/.test(a.detail ?? '')));
  });

  it('mails notices with a portal link and no attachment when the result and the 91 notice are ready', async () => {
    const mails = await until('two notice mails', async () => smarthost.mails.length >= 2 && smarthost.mails);
    const subjects = mails.map((m) => m.subject ?? '');
    assert.ok(subjects.some((s) => /受付: URIAGE_MAIL\.dat/.test(s)), subjects.join(' | '));
    assert.ok(subjects.some((s) => /返却通知.*T91_/.test(s)), subjects.join(' | '));
    for (const m of mails) {
      assert.equal(m.attachments.length, 0, 'no file on mail');
      assert.deepEqual(m.to && !Array.isArray(m.to) ? m.to.value.map((v) => v.address) : [], ['office@tokyo.example']);
      assert.match(m.text ?? '', /https:\/\/127\.0\.0\.1:\d+\/portal\/files\/\S+/);
      assert.equal(redactCardNumbers(m.text ?? ''), m.text, 'no card number in a notice mail');
    }
    // Once each, whatever the notifier does next.
    await c.services.notifier!.runOnce();
    assert.equal(smarthost.mails.length, 2);
  });

  it('refuses AUTH before STARTTLS, a wrong password, an unknown sender and a mail without AUTH, with SMTP errors', async () => {
    const plain = await curl([smtp(), '--user', 'm-tokyo:tokyo-mail-secret', '--mail-from', 'uriage@tokyo.example', '--mail-rcpt', 'upload@centre.example', '-T', eml]);
    assert.notEqual(plain.code, 0);
    assert.match(plain.stderr, /< 538 /, "AUTH before STARTTLS");
    const wrong = await curl([smtp(), '--ssl-reqd', '--insecure', '--user', 'm-tokyo:guess', '--mail-from', 'uriage@tokyo.example', '--mail-rcpt', 'upload@centre.example', '-T', eml]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /< 535 /);
    const stranger = await curl([smtp(), ...ok, '--mail-from', 'someone@elsewhere.example', '--mail-rcpt', 'upload@centre.example', '-T', eml]);
    assert.notEqual(stranger.code, 0);
    assert.match(stranger.stderr, /< 550 .*not allowed/);
    const anonymous = await curl([smtp(), '--ssl-reqd', '--insecure', '--mail-from', 'uriage@tokyo.example', '--mail-rcpt', 'upload@centre.example', '-T', eml]);
    assert.notEqual(anonymous.code, 0);
    assert.match(anonymous.stderr, /< 530 /);
    const landed = (await c.centre.files.list({ partnerId: 'm-tokyo', direction: 'in' })).filter((f) => f.name === 'URIAGE_MAIL.dat');
    assert.equal(landed.length, 1, 'nothing more landed');
    const audit = await listAudit(c.centre.ledger, { protocol: 'mail' });
    assert.ok(audit.some((a) => a.event === 'login_refused' && /wrong user or password/.test(a.detail ?? '')));
    assert.ok(audit.some((a) => a.event === 'refused' && /someone@elsewhere\.example/.test(a.detail ?? '')));
  });
});
