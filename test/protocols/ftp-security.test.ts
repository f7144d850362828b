// FTP access control: plain FTP refused at USER for a TLS account (the password never crosses in
// clear), the same answers for an unknown name as for a known one, failures counted with a growing
// delay, the control connection closed after 3 and a lockout after 10 (with an alert), failed
// logins in the log, and passive data connections only from the control connection's address.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createFtpListener } from '../../protocols/ftp/listener.ts';
import { ftpAccountSchema, ftpListenerSchema } from '../../protocols/ftp/config.ts';
import type { ProtocolListener } from '../../protocols/contract.ts';
import { freePort, makeCentre, selfSignedCert, type TestCentre } from '../helpers/sshd.ts';
import { sleep } from '../helpers/crash.ts';

/** A hand-driven FTP control connection. */
class RawFtp {
  private text = '';
  private waiters: Array<() => void> = [];
  closed = false;
  private constructor(public socket: net.Socket) {
    this.attach(socket);
  }
  private attach(s: net.Socket) {
    s.on('data', (d: Buffer) => {
      this.text += d.toString('latin1');
      for (const w of this.waiters.splice(0)) w();
    });
    s.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    s.on('error', () => undefined);
  }
  static async connect(port: number, localAddress = '127.0.0.1'): Promise<RawFtp> {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    await new Promise<void>((res, rej) => s.once('connect', () => res()).once('error', rej));
    const c = new RawFtp(s);
    await c.reply();
    return c;
  }
  /** The next complete reply line ("NNN text"). */
  async reply(timeoutMs = 15_000): Promise<string> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(\d{3}) [^\r\n]*\r\n/m.exec(this.text);
      if (m) {
        this.text = this.text.slice(m.index + m[0].length);
        return m[0].trim();
      }
      if (this.closed) throw new Error('connection closed');
      if (Date.now() > until) throw new Error(`no reply; have ${JSON.stringify(this.text)}`);
      await new Promise<void>((res) => {
        this.waiters.push(res);
        setTimeout(res, 100);
      });
    }
  }
  async cmd(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.reply();
  }
  async upgrade(): Promise<void> {
    assert.match(await this.cmd('AUTH TLS'), /^234/);
    const secure = tls.connect({ socket: this.socket, rejectUnauthorized: false });
    await new Promise<void>((res, rej) => secure.once('secureConnect', () => res()).once('error', rej));
    this.socket = secure;
    this.attach(secure);
  }
  async waitClosed(ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    while (!this.closed && Date.now() < until) await sleep(20);
    return this.closed;
  }
  end() {
    this.socket.destroy();
  }
}

describe('FTP access control', () => {
  let centre: TestCentre;
  let listener: ProtocolListener;
  let tmp: string;
  let logText = '';
  const logLines = () => logText.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-ftpsec-'));
    const cert = await selfSignedCert(tmp);
    await writeFile(path.join(tmp, 'pw1'), 'kamome-1\n');
    await writeFile(path.join(tmp, 'pw2'), 'tsubame-2\n');
    centre = await makeCentre(['M001', 'M002']);
    centre.ctx.log = pino({ level: 'info' }, new Writable({ write: (c, _e, done) => ((logText += c.toString()), done()) }));
    const pasvMin = await freePort();
    listener = createFtpListener(
      ftpListenerSchema.parse({
        port: 0,
        pasvMin,
        pasvMax: Math.min(pasvMin + 10, 65535),
        tls: { cert: { file: cert.cert }, key: { file: cert.key } },
        failureDelayMs: 2,
        maxUnauthenticatedPerAddress: 20,
      }),
      [
        { partnerId: 'M001', ...ftpAccountSchema.parse({ password: { file: path.join(tmp, 'pw1') } }) },
        { partnerId: 'M002', ...ftpAccountSchema.parse({ password: { file: path.join(tmp, 'pw2') }, plain: true }) },
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

  test('without TLS, a TLS account and an unknown name are refused at USER alike; a plain account gets 331', async () => {
    const c = await RawFtp.connect(listener.port);
    const known = await c.cmd('USER M001');
    assert.match(known, /^530 TLS required/);
    const c2 = await RawFtp.connect(listener.port);
    assert.equal(await c2.cmd('USER nobody'), known, 'an unknown name gets the very same answer');
    const c3 = await RawFtp.connect(listener.port);
    assert.match(await c3.cmd('USER M002'), /^331/);
    for (const x of [c, c2, c3]) x.end();
  });

  test('over TLS, an unknown name and a wrong password get the same 530', async () => {
    const a = await RawFtp.connect(listener.port);
    await a.upgrade();
    assert.match(await a.cmd('USER nobody'), /^331/);
    const unknown = await a.cmd('PASS whatever');
    const b = await RawFtp.connect(listener.port);
    await b.upgrade();
    assert.match(await b.cmd('USER M001'), /^331/);
    const wrong = await b.cmd('PASS not-it');
    assert.equal(unknown, wrong);
    assert.match(wrong, /^530 /);
    a.end();
    b.end();
    const refusals = logLines().filter((l) => l.msg === 'ftp refused' && l.event === 'login_refused');
    assert.ok(refusals.some((l) => /nobody: unknown user/.test(String(l.detail))), 'failed logins are in the log');
    assert.ok(refusals.some((l) => /M001: wrong password/.test(String(l.detail))));
  });

  test('three wrong passwords close the control connection; ten lock the account out for good passwords too', async () => {
    let total = 0;
    const started = Date.now();
    // From an address of its own, so that the earlier tests' failures do not count here.
    for (let conn = 0; conn < 4 && total < 10; conn++) {
      const c = await RawFtp.connect(listener.port, '127.0.0.3');
      assert.match(await c.cmd('USER M002'), /^331/);
      for (let i = 0; i < 3 && total < 10; i++) {
        const r = await c.cmd('PASS wrong').catch((e: Error) => `ERR ${e.message} at conn ${conn} try ${i} total ${total}`);
        assert.match(r, /^530 Authentication failed/);
        total++;
      }
      if (total % 3 === 0) assert.ok(await c.waitClosed(2000), 'closed after 3 failures');
      c.end();
    }
    // The delays grow: 2, 4, 8, ... ms (about 1 s for the tenth).
    assert.ok(Date.now() - started > 2 * (2 ** 9 - 1) * 0.5, 'later failures waited longer');
    const c = await RawFtp.connect(listener.port, '127.0.0.4');
    assert.match(await c.cmd('USER M002'), /^331/);
    assert.match(await c.cmd('PASS tsubame-2'), /^530 Authentication failed/, 'locked out (the name, from any address): the right password is refused');
    c.end();
    const lockout = logLines().find((l) => l.alert === 'login-lockout');
    assert.ok(lockout, 'an alert names the lockout');
    assert.equal(lockout.minutes, 30);
  });
});

describe('FTP passive data connections', () => {
  let centre: TestCentre;
  let listener: ProtocolListener;
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-ftppasv-'));
    await writeFile(path.join(tmp, 'pw'), 'tsubame-2\n');
    centre = await makeCentre(['M002']);
    const pasvMin = await freePort();
    listener = createFtpListener(
      ftpListenerSchema.parse({ port: 0, pasvMin, pasvMax: Math.min(pasvMin + 10, 65535) }),
      [{ partnerId: 'M002', ...ftpAccountSchema.parse({ password: { file: path.join(tmp, 'pw') }, plain: true }) }],
      centre.ctx,
    );
    await listener.start();
    await writeFile(path.join(centre.spool.outbound('M002'), 'KEKKA.DAT'), 'result\r\n');
  });
  after(async () => {
    await listener?.stop();
    await centre?.cleanup();
    await rm(tmp, { recursive: true, force: true });
  });

  test("a connection from another address to the passive port is dropped; the partner's transfer goes on", async () => {
    const c = await RawFtp.connect(listener.port);
    assert.match(await c.cmd('USER M002'), /^331/);
    assert.match(await c.cmd('PASS tsubame-2'), /^230/);
    assert.match(await c.cmd('CWD /outbound'), /^250/);
    const pasv = await c.cmd('PASV');
    const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(pasv)!;
    const port = Number(m[5]) * 256 + Number(m[6]);
    const stranger = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    stranger.on('error', () => undefined);
    await new Promise<void>((res) => stranger.once('close', () => res()));
    assert.equal(c.closed, false, "the partner's session is still there");
    const data = net.connect({ port, host: '127.0.0.1' });
    let got = '';
    data.on('data', (d) => (got += d.toString()));
    await new Promise<void>((res) => data.once('connect', () => res()));
    assert.match(await c.cmd('RETR KEKKA.DAT'), /^150/);
    await new Promise<void>((res) => data.once('close', () => res()));
    assert.match(await c.reply(), /^226/);
    assert.equal(got, 'result\r\n');
    c.end();
  });
});
