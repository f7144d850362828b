// Listeners on an encrypting spool: what partners upload is encrypted on disk as it lands (SFTP
// with OpenSSH's client, FTPS with curl, 全銀 with a partial file broken and resumed), and what they
// download is decrypted as it leaves (OpenSSH's pipelined reads and `reget` at an offset, ssh2
// READs at random offsets, curl's REST, 全銀 照会).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { SFTPWrapper } from 'ssh2';
import { createFtpListener } from '../../protocols/ftp/listener.ts';
import { ftpAccountSchema, ftpListenerSchema } from '../../protocols/ftp/config.ts';
import { createSftpListener } from '../../protocols/sftp/listener.ts';
import { sftpAccountSchema, sftpListenerSchema } from '../../protocols/sftp/config.ts';
import { ZenginClient } from '../../protocols/zengin/client.ts';
import type { ProtocolListener } from '../../protocols/contract.ts';
import { createSpoolFile, isEncryptedFile, readSpoolFile, registerSpoolKeys } from '../../spool/encrypted-file.ts';
import { KeyRing, kekFromBytes } from '../../spool/keys.ts';
import { freePort, knownHostsLine, makeCentre, run, selfSignedCert, shiftJisSample, sshKeygen, type KeyPair, type TestCentre } from '../helpers/sshd.ts';
import { makeFile, startCuttingProxy, startHarness } from './zengin-helpers.ts';

const ring = new KeyRing(kekFromBytes(randomBytes(32)));

/** A spool file written through the spool (encrypted), as the route job leaves outbound files. */
async function putOutbound(file: string, data: Buffer): Promise<void> {
  const w = await createSpoolFile(file);
  await w.write(data);
  await w.finish();
}

/** Whether any 64-byte slice of `plain` appears in the file as it is on disk. */
async function leaks(file: string, plain: Buffer): Promise<boolean> {
  const disk = await readFile(file);
  for (let o = 0; o + 64 <= plain.length; o += Math.max(64, Math.floor(plain.length / 50))) if (disk.includes(plain.subarray(o, o + 64))) return true;
  return false;
}

describe('SFTP on an encrypting spool', () => {
  let centre: TestCentre;
  let listener: ProtocolListener;
  let tmp: string;
  let key: KeyPair;
  let knownHosts: string;
  let undo: () => void;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-atrest-sftp-'));
    key = await sshKeygen(tmp, 'merchant_key');
    const host = await sshKeygen(tmp, 'host_key');
    centre = await makeCentre(['M001']);
    undo = registerSpoolKeys(centre.spool.root, ring);
    listener = createSftpListener(sftpListenerSchema.parse({ port: 0, hostKey: { file: host.privatePath } }), [{ partnerId: 'M001', ...sftpAccountSchema.parse({ publicKeys: [key.publicLine] }) }], centre.ctx);
    await listener.start();
    knownHosts = path.join(tmp, 'known_hosts');
    await writeFile(knownHosts, knownHostsLine(listener.port, host.publicLine));
  });

  after(async () => {
    await listener?.stop();
    undo?.();
    await centre?.cleanup();
    await rm(tmp, { recursive: true, force: true });
  });

  const sftp = (commands: string[]) =>
    (async () => {
      const batch = path.join(tmp, 'batch');
      await writeFile(batch, commands.join('\n') + '\n');
      return run('sftp', ['-b', batch, '-i', key.privatePath, '-P', String(listener.port), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'GlobalKnownHostsFile=/dev/null', 'M001@127.0.0.1'], { cwd: tmp });
    })();

  test('OpenSSH put lands encrypted; get and reget (at an offset) return the plaintext; ls shows its size', async () => {
    const up = shiftJisSample(20_000); // about 600 KB: pipelined WRITEs, several chunks
    await writeFile(path.join(tmp, 'URIAGE.DAT'), up);
    const down = shiftJisSample(30_000);
    const outFile = path.join(centre.spool.outbound('M001'), 'KEKKA.DAT');
    await putOutbound(outFile, down);
    assert.ok(await leaks(outFile, down) === false);

    // reget: the local copy holds the first 100,001 bytes; the rest is read from that offset.
    await writeFile(path.join(tmp, 'PART.local'), down.subarray(0, 100_001));
    const r = await sftp(['cd /inbound', 'put URIAGE.DAT', 'cd /outbound', 'ls -l', 'get KEKKA.DAT KEKKA.local', 'reget KEKKA.DAT PART.local']);
    const landed = path.join(centre.spool.inbound('M001'), 'URIAGE.DAT');
    assert.ok(await isEncryptedFile(landed));
    assert.equal(await leaks(landed, up), false, 'the upload is not on disk in the clear');
    assert.equal((await stat(landed)).mode & 0o777, 0o600);
    assert.ok((await readSpoolFile(landed)).equals(up));
    assert.ok((await readFile(path.join(tmp, 'KEKKA.local'))).equals(down));
    assert.ok((await readFile(path.join(tmp, 'PART.local'))).equals(down));
    assert.match(r.stdout, new RegExp(`\\s${down.length}\\s.*KEKKA\\.DAT`), 'the listing shows the plaintext size');
  });

  test('READs at random offsets and past the end return the plaintext bytes', async () => {
    const data = shiftJisSample(8000);
    await putOutbound(path.join(centre.spool.outbound('M001'), 'RANDOM.DAT'), data);
    const { conn, sftp: s } = await new Promise<{ conn: ssh2.Client; sftp: SFTPWrapper }>((resolve, reject) => {
      const conn = new ssh2.Client();
      conn.once('error', reject);
      conn.once('ready', () => conn.sftp((err, sftp) => (err ? reject(err) : resolve({ conn, sftp }))));
      void readFile(key.privatePath).then((privateKey) => conn.connect({ host: '127.0.0.1', port: listener.port, username: 'M001', privateKey, hostVerifier: () => true }));
    });
    try {
      const h = await new Promise<Buffer>((res, rej) => s.open('/outbound/RANDOM.DAT', 'r', (e, x) => (e ? rej(e) : res(x))));
      const attrs = await new Promise<{ size: number }>((res, rej) => s.fstat(h, (e, a) => (e ? rej(e) : res(a))));
      assert.equal(attrs.size, data.length);
      for (let i = 0; i < 40; i++) {
        const at = Math.floor(Math.random() * data.length);
        const len = 1 + Math.floor(Math.random() * 40_000);
        const got = await new Promise<Buffer>((res, rej) => s.read(h, Buffer.alloc(len), 0, len, at, (e, n, b) => (e ? rej(e) : res(b.subarray(0, n)))));
        assert.ok(got.equals(data.subarray(at, Math.min(data.length, at + got.length))) && got.length > 0, `read ${len} at ${at}`);
      }
      // At the end: EOF (ssh2 reports it as an error or as 0 bytes), never bytes.
      const atEnd = await new Promise<number>((res) => s.read(h, Buffer.alloc(10), 0, 10, data.length, (e, n) => res(e ? 0 : n)));
      assert.equal(atEnd, 0);
      await new Promise<void>((res) => s.close(h, () => res()));
    } finally {
      conn.end();
    }
  });
});

test('全銀 on an encrypting spool: a broken push leaves an encrypted partial, the 再送要求 resumes it, 照会 serves the plaintext', async () => {
  const h = await startHarness();
  const undo = registerSpoolKeys(h.spool.root, ring);
  try {
    const records = 2000;
    const data = makeFile('31', records, 200);
    await writeFile(path.join(h.dir, 'src'), data);
    const proxy = await startCuttingProxy(h.listener.port, [250_000]);
    try {
      const first = new ZenginClient(await h.endpoint({ port: proxy.port, restartAttempts: 0 }));
      await assert.rejects(first.push(path.join(h.dir, 'src'), '31'), /connection/);
    } finally {
      await proxy.close();
    }
    const partialDir = path.join(h.spool.work, 'zengin-partial', 'merchant1');
    const partial = (await readdir(partialDir)).find((f) => f.endsWith('.data'))!;
    assert.ok(partial, 'a partial file is kept');
    assert.ok(await isEncryptedFile(path.join(partialDir, partial)));
    assert.equal(await leaks(path.join(partialDir, partial), data.subarray(0, 200_000)), false, 'the partial is not in the clear');
    assert.equal((await stat(path.join(partialDir, partial))).mode & 0o777, 0o600);

    const watch = await startCuttingProxy(h.listener.port, []);
    try {
      await new ZenginClient(await h.endpoint({ port: watch.port })).sendFiles([{ localPath: path.join(h.dir, 'src'), remoteName: '31' }], { restart: true });
      assert.ok(watch.forwarded() < data.length - 150_000, `resumed, not resent: ${watch.forwarded()} bytes`);
    } finally {
      await watch.close();
    }
    const landed = await h.inbound();
    assert.equal(landed.length, 1);
    const landedPath = path.join(h.spool.inbound('merchant1'), landed[0]!);
    assert.ok(await isEncryptedFile(landedPath));
    assert.ok((await readSpoolFile(landedPath)).equals(data), 'the resumed file is whole and identical');

    // A torn last write in a partial (crash mid-write) costs only what it tore.
    const again = makeFile('31', records, 200);
    await writeFile(path.join(h.dir, 'src2'), again);
    const cut = await startCuttingProxy(h.listener.port, [300_000]);
    try {
      await assert.rejects(new ZenginClient(await h.endpoint({ port: cut.port, restartAttempts: 0 })).push(path.join(h.dir, 'src2'), '31'), /connection/);
    } finally {
      await cut.close();
    }
    const p2 = path.join(partialDir, (await readdir(partialDir)).find((f) => f.endsWith('.data'))!);
    await truncate(p2, (await stat(p2)).size - 7);
    await new ZenginClient(await h.endpoint()).sendFiles([{ localPath: path.join(h.dir, 'src2'), remoteName: '31' }], { restart: true });
    const both = await h.inbound();
    assert.equal(both.length, 2);
    const second = both.find((n) => n !== landed[0])!;
    assert.ok((await readSpoolFile(path.join(h.spool.inbound('merchant1'), second))).equals(again));

    // 照会: the partner pulls an encrypted outbound file and gets the plaintext.
    const result = makeFile('33', 300, 200);
    await putOutbound(path.join(h.spool.outbound('merchant1'), 'result.dat'), result);
    const target = path.join(h.dir, 'got');
    const got = await new ZenginClient(await h.endpoint()).pull('ZGN330000001', target);
    assert.equal(got.bytes, result.length);
    assert.ok((await readFile(target)).equals(result));
  } finally {
    undo();
    await h.close();
  }
});

test('FTPS on an encrypting spool: curl uploads land encrypted; a download and a REST resume return the plaintext', async () => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-atrest-ftp-'));
  const centre = await makeCentre(['M001']);
  const undo = registerSpoolKeys(centre.spool.root, ring);
  const tls = await selfSignedCert(tmp);
  await writeFile(path.join(tmp, 'pw'), 'kamome-1\n');
  const pasvMin = await freePort();
  const listener = createFtpListener(
    ftpListenerSchema.parse({ port: 0, pasvMin, pasvMax: Math.min(pasvMin + 20, 65535), tls: { cert: { file: tls.cert }, key: { file: tls.key } } }),
    [{ partnerId: 'M001', ...ftpAccountSchema.parse({ password: { file: path.join(tmp, 'pw') } }) }],
    centre.ctx,
  );
  await listener.start();
  const curl = (...args: string[]) => run('curl', ['-sS', '--fail', '--max-time', '20', '--ssl-reqd', '--cacert', tls.cert, '--user', 'M001:kamome-1', ...args], { cwd: tmp });
  const base = `ftp://127.0.0.1:${listener.port}`;
  try {
    const up = shiftJisSample(10_000);
    await writeFile(path.join(tmp, 'URIAGE.DAT'), up);
    const down = shiftJisSample(25_000);
    await putOutbound(path.join(centre.spool.outbound('M001'), 'KEKKA.DAT'), down);
    await curl('-T', 'URIAGE.DAT', `${base}/inbound/URIAGE.DAT`);
    await curl('-o', 'KEKKA.local', `${base}/outbound/KEKKA.DAT`);
    // -C 123457: REST 123457, then RETR: the rest of the file from that plaintext offset.
    await writeFile(path.join(tmp, 'PART.local'), down.subarray(0, 123_457));
    await curl('-C', '123457', '-o', 'PART.local', `${base}/outbound/KEKKA.DAT`);
    const landed = path.join(centre.spool.inbound('M001'), 'URIAGE.DAT');
    assert.ok(await isEncryptedFile(landed));
    assert.equal(await leaks(landed, up), false);
    assert.ok((await readSpoolFile(landed)).equals(up));
    assert.ok((await readFile(path.join(tmp, 'KEKKA.local'))).equals(down));
    assert.ok((await readFile(path.join(tmp, 'PART.local'))).equals(down));
  } finally {
    await listener.stop();
    undo();
    await centre.cleanup();
    await rm(tmp, { recursive: true, force: true });
  }
});
