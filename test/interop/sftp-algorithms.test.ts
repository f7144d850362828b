// Our SFTP server against OpenSSH's client: the server-sig-algs it announces is well formed and
// lists SHA-2 signatures only; an RSA key signing with SHA-2 gets in, the same key forced to
// ssh-rsa (SHA-1) does not; DSA keys are refused by the config; passwords: same methods for every
// name, failures counted, the connection closed after 3 and a lockout after 10.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import ssh2 from 'ssh2';
import { createSftpListener } from '../../protocols/sftp/listener.ts';
import { sftpAccountSchema, sftpListenerSchema } from '../../protocols/sftp/config.ts';
import type { ProtocolListener } from '../../protocols/contract.ts';
import { knownHostsLine, makeCentre, run, sshKeygen, type KeyPair, type TestCentre } from '../helpers/sshd.ts';

describe('SFTP algorithms and password failures', () => {
  let centre: TestCentre;
  let listener: ProtocolListener;
  let tmp: string;
  let rsa: KeyPair;
  let knownHosts: string;
  let logText = '';

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-sftp-alg-'));
    rsa = await sshKeygen(tmp, 'rsa_key', 'rsa');
    const host = await sshKeygen(tmp, 'host_key');
    await writeFile(path.join(tmp, 'pw'), 'correct horse\n');
    centre = await makeCentre(['M001', 'M003']);
    centre.ctx.log = pino({ level: 'info' }, new Writable({ write: (c, _e, done) => ((logText += c.toString()), done()) }));
    listener = createSftpListener(
      sftpListenerSchema.parse({ port: 0, hostKey: { file: host.privatePath }, failureDelayMs: 2, maxUnauthenticatedPerAddress: 20 }),
      [
        { partnerId: 'M001', ...sftpAccountSchema.parse({ publicKeys: [rsa.publicLine] }) },
        { partnerId: 'M003', ...sftpAccountSchema.parse({ allowPassword: true, password: { file: path.join(tmp, 'pw') } }) },
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

  const ssh = (extra: string[]) =>
    run('sftp', [
      '-vvv', '-b', '/dev/null', '-i', rsa.privatePath, '-P', String(listener.port),
      '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${knownHosts}`,
      '-o', 'StrictHostKeyChecking=yes', '-o', 'GlobalKnownHostsFile=/dev/null', ...extra, 'M001@127.0.0.1',
    ], { cwd: tmp }).then(
      (r) => ({ ok: true, log: r.stderr }),
      (e: { stderr?: string }) => ({ ok: false, log: String(e.stderr) }),
    );

  test("OpenSSH reads a well-formed server-sig-algs with SHA-2 only, and logs in with rsa-sha2", async () => {
    const r = await ssh([]);
    assert.ok(r.ok, r.log.slice(-2000));
    const m = /server-sig-algs=<([^>]*)>/.exec(r.log);
    assert.ok(m, 'OpenSSH saw server-sig-algs');
    assert.deepEqual(m[1]!.split(','), ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256']);
    assert.match(r.log, /Server accepts key: .* RSA SHA256:|Authenticated .* using "publickey"/);
  });

  test('the same RSA key signing with ssh-rsa (SHA-1) is refused', async () => {
    const r = await ssh(['-o', 'PubkeyAcceptedAlgorithms=ssh-rsa', '-o', 'HostKeyAlgorithms=ssh-ed25519']);
    assert.equal(r.ok, false, 'no login with a SHA-1 signature');
    assert.match(r.log, /Permission denied/);
  });

  test('a DSA key in an account is a config error', () => {
    const dsa = 'ssh-dss AAAAB3NzaC1kc3MAAACBAP8= old@host';
    assert.throws(() => sftpAccountSchema.parse({ publicKeys: [dsa] }), /DSA keys \(ssh-dss\) are refused/);
  });

  const tryPasswords = (username: string, passwords: string[]) =>
    new Promise<{ ok: boolean; methods: string[][]; closed: boolean }>((resolve) => {
      const conn = new ssh2.Client();
      const methods: string[][] = [];
      const queue = [...passwords];
      let ok = false;
      conn.on('error', () => undefined);
      conn.on('ready', () => ((ok = true), conn.end()));
      conn.on('close', () => resolve({ ok, methods, closed: true }));
      conn.connect({
        host: '127.0.0.1',
        port: listener.port,
        username,
        hostVerifier: () => true,
        readyTimeout: 20_000,
        authHandler: (methodsLeft: string[] | null, _partial: boolean | null, next: (m: unknown) => void) => {
          if (methodsLeft) methods.push(methodsLeft);
          const pw = queue.shift();
          return next(pw === undefined ? false : { type: 'password', username, password: pw });
        },
      } as never);
    });

  test('an unknown name is offered the same methods; three wrong passwords end the connection; ten lock the account', async () => {
    const unknown = await tryPasswords('nobody', ['a']);
    const known = await tryPasswords('M003', ['a']);
    assert.deepEqual(unknown.methods, known.methods, 'the same answer whether or not the name exists');
    // 2 failures so far for M003's address... the name M003 has 1. Eight more wrong, across connections.
    const third = await tryPasswords('M003', ['b', 'c', 'd', 'e']);
    assert.equal(third.ok, false);
    assert.equal(third.methods.length, 3, 'the connection ended after the third failure (no fourth try)');
    await tryPasswords('M003', ['f', 'g', 'h']);
    await tryPasswords('M003', ['i', 'j']);
    const locked = await tryPasswords('M003', ['correct horse']);
    assert.equal(locked.ok, false, 'locked out: the right password is refused');
    assert.ok(logText.includes('"alert":"login-lockout"'), 'the lockout is alerted');
    assert.ok(logText.includes('wrong password'), 'failed logins are in the log');
  });
});
