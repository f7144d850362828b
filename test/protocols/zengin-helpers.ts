// Shared set-up for the 全銀 tests: a temporary spool and ledger, a listener with one or two
// partners, and endpoints that call it. Real sockets, real files.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { SpoolTree } from '../../spool/tree.ts';
import { openLedger, type Ledger } from '../../spool/ledger/index.ts';
import { createZenginListener, type ZenginListener } from '../../protocols/zengin/listener.ts';
import type { ZenginAccountInput, ZenginEndpointInput, ZenginListenerInput } from '../../protocols/zengin/config.ts';
import type { ListenerContext } from '../../protocols/contract.ts';

export const CENTRE_CODE = 'F0F0F0F0F00001';
export const MERCHANT_CODE = 'F1F0F0F0F00001';
export const OTHER_CODE = 'F1F0F0F0F00002';

export interface Harness {
  dir: string;
  spool: SpoolTree;
  ledger: Ledger;
  listener: ZenginListener;
  landed: string[];
  pickedUp: { partnerId: string; fileName: string; bytes: number }[];
  secret(name: string, value: string): Promise<{ file: string }>;
  endpoint(overrides?: Partial<ZenginEndpointInput>): Promise<ZenginEndpointInput>;
  inbound(partnerId?: string): Promise<string[]>;
  close(): Promise<void>;
}

export const merchantFiles = [
  { zenginName: 'ZGN310000001', accessKey: 'KEY031', fileType: '31', direction: 'send' as const },
  { zenginName: 'ZGN410000001', accessKey: 'KEY041', fileType: '41', direction: 'send' as const },
  { zenginName: 'ZGN330000001', accessKey: 'KEY033', fileType: '33', direction: 'receive' as const },
  { zenginName: 'ZGN910000001', accessKey: 'KEY091', fileType: '91', direction: 'receive' as const },
];

export async function startHarness(
  options: {
    listener?: Partial<ZenginListenerInput>;
    account?: Partial<ZenginAccountInput>;
    extraAccounts?: Record<string, ZenginAccountInput>;
    password?: string;
    limitsFor?: ListenerContext['limitsFor'];
  } = {},
): Promise<Harness> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'zengin-'));
  const spool = new SpoolTree(path.join(dir, 'spool'));
  await spool.ensure(['merchant1', 'merchant2']);
  const ledger = await openLedger(`sqlite:${path.join(dir, 'ledger.db')}`);
  const secret = async (name: string, value: string) => {
    const file = path.join(dir, `${name}.secret`);
    await writeFile(file, value);
    return { file };
  };
  const landed: string[] = [];
  const pickedUp: Harness['pickedUp'] = [];
  const account: ZenginAccountInput = {
    partnerCode: MERCHANT_CODE,
    password: await secret('merchant1', options.password ?? 'PASS01'),
    files: merchantFiles,
    ...options.account,
  };
  const listener = createZenginListener(
    { host: '127.0.0.1', port: 0, ownCode: CENTRE_CODE, inactivitySeconds: 5, ...options.listener },
    { merchant1: account, ...options.extraAccounts },
    {
      spool,
      ledger,
      log: pino({ level: process.env.ZENGIN_TEST_LOG ?? 'silent' }),
      onLanded: (_p, finalPath) => void landed.push(finalPath),
      onPickedUp: (partnerId, fileName, bytes) => void pickedUp.push({ partnerId, fileName, bytes }),
      limitsFor: options.limitsFor,
    },
  );
  await listener.start();
  return {
    dir,
    spool,
    ledger,
    listener,
    landed,
    pickedUp,
    secret,
    async endpoint(overrides = {}) {
      return {
        protocol: 'zengin',
        host: '127.0.0.1',
        port: listener.port,
        ownCode: MERCHANT_CODE,
        partnerCode: CENTRE_CODE,
        password: await secret('client', 'PASS01'),
        restartDelayMs: 0,
        timeoutSeconds: 5,
        files: merchantFiles.map((f) => ({ ...f, recordLength: f.fileType === '31' || f.fileType === '33' ? 200 : 120 })),
        ...overrides,
      };
    },
    async inbound(partnerId = 'merchant1') {
      return (await readdir(spool.inbound(partnerId))).sort();
    },
    async close() {
      await listener.stop();
      await ledger.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A file of `records` records: an ASCII header with the file type, then random data records. */
export function makeFile(fileType: string, records: number, recordLength: number): Buffer {
  const data = randomBytes(records * recordLength);
  if (records > 0) Buffer.from(`1${fileType}0`.padEnd(recordLength, ' '), 'ascii').copy(data, 0);
  return data;
}

/** A TCP proxy that forwards to `port` and cuts each connection after the byte counts in `cuts`. */
export async function startCuttingProxy(port: number, cuts: number[]): Promise<{ port: number; forwarded: () => number; connections: () => number; close(): Promise<void> }> {
  let forwarded = 0;
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const cut = cuts[connections++];
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    let sent = 0;
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      if (cut !== undefined && sent + chunk.length >= cut) {
        const part = chunk.subarray(0, cut - sent);
        sent += part.length;
        forwarded += part.length;
        upstream.write(part, kill);
        return;
      }
      sent += chunk.length;
      forwarded += chunk.length;
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('close', kill).on('error', kill);
    upstream.on('close', kill).on('error', kill);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    forwarded: () => forwarded,
    connections: () => connections,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
