// A partner must not be able to stop the centre: `tsunagi serve` with a 256 MiB heap takes 2,000
// pipelined 32 KiB WRITEs, a READ flood from a client that stops reading, and a handle flood,
// answering or refusing each, and stays up for the next partner.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { SFTPWrapper } from 'ssh2';
import { ensureSshKeyPair } from '../../jobs/keys.ts';
import { makeTestCentre, type TestCentre } from '../helpers/centre.ts';
import { freePort } from '../helpers/sshd.ts';
import { sleep, startServe, type WorkerProcess } from '../helpers/crash.ts';

describe('SFTP floods against serve (256 MiB heap)', () => {
  let c: TestCentre;
  let serve: WorkerProcess;
  let port: number;
  let privateKey: Buffer;

  before(async () => {
    c = await makeTestCentre({ merchants: 1, companies: 1 });
    const keys = path.join(c.dir, 'keys');
    await mkdir(keys);
    await ensureSshKeyPair(path.join(keys, 'host'), 'host');
    const merchant = await ensureSshKeyPair(path.join(keys, 'm001'), 'm001');
    privateKey = await readFile(path.join(keys, 'm001'));
    port = await freePort();
    const config = (await readFile(c.configFile, 'utf8')).replace(
      'delivery: { protocol: local, path: ./remote/m001 } }',
      `delivery: { protocol: pull }, sftp: { publicKeys: ["${merchant.publicLine}"] } }`,
    );
    await writeFile(c.configFile, config);
    // No schedules that would touch the flood's file while the test runs.
    await appendFile(c.configFile, `listeners: { sftp: { port: ${port}, hostKey: { file: ./keys/host }, maxSessionsPerPartner: 8 } }\n`);
    serve = startServe(c.configFile, {}, { nodeArgs: ['--max-old-space-size=256'] });
    await serve.ready;
  });

  after(async () => {
    await serve?.stop();
    if (c) await rm(c.dir, { recursive: true, force: true });
  });

  function connect(): Promise<{ conn: ssh2.Client; sftp: SFTPWrapper }> {
    return new Promise((resolve, reject) => {
      const conn = new ssh2.Client();
      conn.once('error', reject);
      conn.once('ready', () => conn.sftp((err, sftp) => (err ? reject(err) : resolve({ conn, sftp }))));
      conn.connect({ host: '127.0.0.1', port, username: 'm001', privateKey, hostVerifier: () => true, readyTimeout: 10_000 });
    });
  }
  const openFile = (sftp: SFTPWrapper, p: string, mode: "r" | "w") =>
    new Promise<Buffer>((res, rej) => sftp.open(p, mode, (e, h) => (e ? rej(e) : res(h))));
  const closeFile = (sftp: SFTPWrapper, h: Buffer) =>
    new Promise<Error | undefined>((res, rej) => {
      const timer = setTimeout(() => rej(new Error('CLOSE not answered')), 20_000);
      sftp.close(h, (e) => (clearTimeout(timer), res(e ?? undefined)));
    });

  async function uploadWorks(name: string): Promise<void> {
    const { conn, sftp } = await connect();
    try {
      const h = await openFile(sftp, `/inbound/${name}`, 'w');
      const data = Buffer.alloc(100_000, 0x41);
      await new Promise<void>((res, rej) => sftp.write(h, data, 0, data.length, 0, (e) => (e ? rej(e) : res())));
      assert.equal(await closeFile(sftp, h), undefined);
    } finally {
      conn.end();
    }
  }

  test('2,000 pipelined 32 KiB WRITEs are answered or refused, serve lives, and the next upload works', async () => {
    const { conn, sftp } = await connect();
    const h = await openFile(sftp, '/inbound/FLOOD.DAT', 'w');
    const chunk = Buffer.alloc(32 * 1024, 0x30);
    let ok = 0;
    let refused = 0;
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 2000; i++) {
      writes.push(
        new Promise<void>((res) =>
          sftp.write(h, chunk, 0, chunk.length, i * chunk.length, (e) => {
            if (e) refused++;
            else ok++;
            res();
          }),
        ),
      );
    }
    const died = serve.exited.then(() => assert.fail(`serve died:\n${serve.output().slice(-2000)}`));
    const keepAlive = setInterval(() => undefined, 1000);
    await Promise.race([Promise.all(writes), died]).finally(() => clearInterval(keepAlive));
    assert.equal(ok + refused, 2000);
    assert.ok(serve.alive(), 'serve is still running');
    const closed = await closeFile(sftp, h);
    conn.end();
    if (refused > 0) {
      // A refused write aborts the upload: no file with a hole in it reaches inbound.
      assert.ok(closed, 'the CLOSE of a refused upload fails');
      const inbound = await readdir(path.join(c.dir, 'spool', 'partners', 'm001', 'inbound'));
      assert.ok(!inbound.includes('FLOOD.DAT'));
    }
    await uploadWorks('AFTER-WRITES.DAT');
  });

  test('a READ flood from a client that stops reading is bounded and refused', async () => {
    const outbound = path.join(c.dir, 'spool', 'partners', 'm001', 'outbound');
    await mkdir(outbound, { recursive: true });
    await writeFile(path.join(outbound, 'BIG.DAT'), Buffer.alloc(4 * 1024 * 1024, 0x31));
    const { conn, sftp } = await connect();
    const h = await openFile(sftp, '/outbound/BIG.DAT', 'r');
    // Ask for the 4 MiB file again and again, then stop reading the socket: 4,000 READs of
    // 32 KiB want 125 MiB that the server would have to hold.
    const sock = (conn as unknown as { _sock: import('node:net').Socket })._sock;
    let ok = 0;
    let refused = 0;
    const reads: Promise<void>[] = [];
    const N = 4000;
    for (let i = 0; i < N; i++) {
      const buf = Buffer.allocUnsafe(32 * 1024);
      reads.push(
        new Promise<void>((res) =>
          sftp.read(h, buf, 0, buf.length, (i % 128) * buf.length, (e) => {
            if (e) refused++;
            else ok++;
            res();
          }),
        ),
      );
    }
    sock.pause();
    await sleep(3000);
    assert.ok(serve.alive(), 'serve is still running');
    sock.resume();
    await Promise.race([Promise.all(reads), serve.exited.then(() => assert.fail('serve died'))]);
    assert.equal(ok + refused, N);
    assert.ok(refused > 0, `the server refused reads beyond its bound (ok ${ok}, refused ${refused})`);
    assert.ok(ok * 32 * 1024 >= 16 * 1024 * 1024, `and served a good share of them (ok ${ok})`);
    conn.end();
    await uploadWorks('AFTER-READS.DAT');
  });

  test('open handles are capped per session', async () => {
    const { conn, sftp } = await connect();
    const opened: Buffer[] = [];
    let refusedAt = -1;
    for (let i = 0; i < 200; i++) {
      try {
        opened.push(await openFile(sftp, '/outbound/BIG.DAT', 'r'));
      } catch (err) {
        assert.match((err as Error).message, /too many open handles/);
        refusedAt = i;
        break;
      }
    }
    assert.ok(refusedAt > 0 && refusedAt <= 64, `refused at ${refusedAt}`);
    // Closing one frees a slot.
    await closeFile(sftp, opened.pop()!);
    opened.push(await openFile(sftp, '/outbound/BIG.DAT', 'r'));
    conn.end();
    assert.ok(serve.alive());
  });

  test('channels are capped per connection', async () => {
    const { conn } = await connect();
    const more = (): Promise<boolean> => new Promise((res) => conn.sftp((err) => res(!err)));
    const results: boolean[] = [];
    for (let i = 0; i < 5; i++) results.push(await more());
    assert.deepEqual(results, [true, true, true, false, false], 'four channels in all, the first one included');
    conn.end();
  });
});
