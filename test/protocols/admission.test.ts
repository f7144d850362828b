// Connections that have not logged in, on every listener (SFTP, FTP, 全銀): a global and a
// per-address cap, a login grace time that bytes do not extend, an allow-list, and no audit row
// for a connection that never logged in or sent anything. A partner can still log in afterwards.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import * as ftp from 'basic-ftp';
import { createSftpListener } from '../../protocols/sftp/listener.ts';
import { sftpAccountSchema, sftpListenerSchema } from '../../protocols/sftp/config.ts';
import { createFtpListener } from '../../protocols/ftp/listener.ts';
import { ftpAccountSchema, ftpListenerSchema } from '../../protocols/ftp/config.ts';
import { listAudit } from '../../spool/ledger/index.ts';
import type { ProtocolListener } from '../../protocols/contract.ts';
import type { Ledger } from '../../spool/ledger/index.ts';
import { freePort, makeCentre, sshKeygen, type TestCentre } from '../helpers/sshd.ts';
import { startHarness, type Harness } from './zengin-helpers.ts';
import { RawPeer, openRequest } from './zengin-raw.ts';
import { sleep } from '../helpers/crash.ts';

const LIMITS = { maxUnauthenticated: 6, maxUnauthenticatedPerAddress: 3, loginGraceSeconds: 1.5 };

interface Target {
  name: string;
  port(): number;
  ledger(): Ledger;
  /** The i-th bit a trickling client sends: never a whole login. */
  trickle(i: number): Buffer;
  login(localAddress?: string): Promise<void>;
  start(extra?: object): Promise<void>;
  stop(): Promise<void>;
}

interface Conn {
  socket: net.Socket;
  closedAt?: number;
  closed: Promise<void>;
}

async function open(port: number, localAddress = '127.0.0.1'): Promise<Conn> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  socket.on('error', () => undefined);
  socket.on('data', () => undefined);
  const c: Conn = { socket, closed: new Promise((res) => socket.once('close', () => res())) };
  void c.closed.then(() => (c.closedAt = Date.now()));
  await new Promise<void>((res) => {
    socket.once('connect', () => res());
    socket.once('close', () => res());
  });
  return c;
}

/** USER/PASS by hand over a socket bound to `localAddress` (basic-ftp cannot choose one). */
async function rawFtpLogin(port: number, localAddress: string): Promise<void> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  let text = '';
  const waitFor = (code: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (new RegExp(`^${code} `, 'm').test(text)) {
          socket.off('data', onData);
          text = '';
          resolve();
        }
      };
      const onData = (d: Buffer) => ((text += d.toString()), check());
      socket.on('data', onData);
      socket.once('close', () => reject(new Error(`closed waiting for ${code}: ${text}`)));
      check();
    });
  try {
    await waitFor('220');
    socket.write('USER M001\r\n');
    await waitFor('331');
    socket.write('PASS kamome-1\r\n');
    await waitFor('230');
  } finally {
    socket.destroy();
  }
}

function targets(): Target[] {
  let tmp: string;
  let centre: TestCentre;
  let sftpListener: ProtocolListener;
  let ftpListener: ProtocolListener;
  let zengin: Harness;
  let privateKey: Buffer;
  let keyLine: string;
  let hostKeyPath: string;
  const setup = async () => {
    if (tmp) return;
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-admit-'));
    const key = await sshKeygen(tmp, 'merchant');
    hostKeyPath = (await sshKeygen(tmp, 'host')).privatePath;
    privateKey = await readFile(key.privatePath);
    keyLine = key.publicLine;
    await writeFile(path.join(tmp, 'pw'), 'kamome-1\n');
  };
  return [
    {
      name: 'SFTP',
      port: () => sftpListener.port,
      ledger: () => centre.ledger,
      trickle: (i) => Buffer.from('SSH-2.0-slow-client-that-never-ends'.slice(i, i + 1) || 'x'),
      async start(extra = {}) {
        await setup();
        centre = await makeCentre(['M001']);
        sftpListener = createSftpListener(
          sftpListenerSchema.parse({ port: 0, hostKey: { file: hostKeyPath }, ...LIMITS, ...extra }),
          [{ partnerId: 'M001', ...sftpAccountSchema.parse({ publicKeys: [keyLine] }) }],
          centre.ctx,
        );
        await sftpListener.start();
      },
      async login(localAddress) {
        await new Promise<void>((resolve, reject) => {
          const conn = new ssh2.Client();
          conn.once('error', reject);
          conn.once('ready', () => (conn.end(), resolve()));
          conn.connect({ host: '127.0.0.1', port: sftpListener.port, localAddress, username: 'M001', privateKey, hostVerifier: () => true, readyTimeout: 5000 });
        });
      },
      async stop() {
        await sftpListener.stop();
        await centre.cleanup();
      },
    },
    {
      name: 'FTP',
      port: () => ftpListener.port,
      ledger: () => centre.ledger,
      trickle: () => Buffer.from('NOOP\r\n'),
      async start(extra = {}) {
        await setup();
        centre = await makeCentre(['M001']);
        const pasvMin = await freePort();
        ftpListener = createFtpListener(
          ftpListenerSchema.parse({ port: 0, pasvMin, pasvMax: Math.min(pasvMin + 5, 65535), ...LIMITS, ...extra }),
          [{ partnerId: 'M001', ...ftpAccountSchema.parse({ password: { file: path.join(tmp, 'pw') }, plain: true }) }],
          centre.ctx,
        );
        await ftpListener.start();
      },
      async login(localAddress) {
        if (localAddress) return rawFtpLogin(ftpListener.port, localAddress);
        const client = new ftp.Client(5000);
        try {
          await client.access({ host: '127.0.0.1', port: ftpListener.port, user: 'M001', password: 'kamome-1', secure: false });
        } finally {
          client.close();
        }
      },
      async stop() {
        await ftpListener.stop();
        await centre.cleanup();
      },
    },
    {
      name: '全銀',
      port: () => zengin.listener.port,
      ledger: () => zengin.ledger,
      trickle: (i) => openRequest().subarray(i, i + 1), // a 開局要求, one byte at a time
      async start(extra = {}) {
        zengin = await startHarness({ listener: { ...LIMITS, ...extra } });
      },
      async login(localAddress) {
        const peer = localAddress
          ? await (async () => {
              const socket = net.connect({ port: zengin.listener.port, host: '127.0.0.1', localAddress });
              await new Promise<void>((res, rej) => socket.once('connect', res).once('error', rej));
              return new (RawPeer as unknown as new (s: net.Socket) => RawPeer)(socket);
            })()
          : await RawPeer.connect(zengin.listener.port);
        try {
          await peer.login();
        } finally {
          peer.destroy();
        }
      },
      async stop() {
        await zengin.close();
      },
    },
  ];
}

const all = targets();
after(async () => undefined);

for (const t of all) {
  describe(`${t.name} listener: connections not logged in`, () => {
    before(() => t.start());
    after(() => t.stop());

    test('per-address and global caps, a grace time that bytes do not extend, no audit rows, then a login works', async () => {
      const port = t.port();
      const first = await Promise.all([1, 2, 3].map(() => open(port, '127.0.0.1')));
      const second = await Promise.all([1, 2, 3].map(() => open(port, '127.0.0.2')));
      const openedAt = Date.now();
      await sleep(300);
      for (const c of [...first, ...second]) assert.equal(c.closedAt, undefined, 'within the caps: held');
      // A fourth from the same address: refused at once.
      const fourth = await open(port, '127.0.0.1');
      await Promise.race([fourth.closed, sleep(700).then(() => assert.fail('the fourth connection from one address was not refused'))]);
      // The global cap: a seventh from a third address is refused too.
      const seventh = await open(port, '127.0.0.3');
      await Promise.race([seventh.closed, sleep(700).then(() => assert.fail('the seventh connection was not refused'))]);
      // The six held ones trickle bytes; the grace time still ends them.
      let tick = 0;
      const trickle = setInterval(() => {
        for (const c of [...first, ...second]) if (!c.socket.destroyed) c.socket.write(t.trickle(tick));
        tick++;
      }, 150);
      try {
        await Promise.race([
          Promise.all([...first, ...second].map((c) => c.closed)),
          sleep(5000).then(() => assert.fail('trickling connections outlived the login grace time')),
        ]);
      } finally {
        clearInterval(trickle);
      }
      for (const c of [...first, ...second]) assert.ok(c.closedAt! - openedAt >= 1000, 'not before the grace time');
      await sleep(100);
      await t.login();
      await sleep(200);
      const rows = await listAudit(t.ledger(), {});
      assert.deepEqual(
        rows.filter((r) => r.event !== 'login_ok' && r.event !== 'session_end'),
        [],
        'connections that never logged in leave no audit rows',
      );
    });
  });

  describe(`${t.name} listener: allowFrom`, () => {
    before(() => t.start({ allowFrom: ['127.0.0.2/32', '10.0.0.0/8'] }));
    after(() => t.stop());

    test('only listed addresses may connect', async () => {
      const stranger = await open(t.port(), '127.0.0.1');
      await Promise.race([stranger.closed, sleep(700).then(() => assert.fail('a connection from an address not allowed was held'))]);
      await t.login('127.0.0.2');
    });
  });
}
