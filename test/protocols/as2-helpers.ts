// Test helpers for AS2: keys and certificates made by openssl at test time, messages built with
// `openssl cms` (the independent peer), raw HTTP posts, and a listener on an ephemeral port.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import type { ListenerContext } from '../../protocols/contract.ts';
import { sqliteLedger, type TestLedger } from '../helpers/ledgers.ts';
import { SpoolTree } from '../../spool/tree.ts';
import { as2ListenerSchema, loadPartnership, type As2Account } from '../../protocols/as2/config.ts';
import { createAs2Listener, type As2Listener, type As2ListenerPartner } from '../../protocols/as2/listener.ts';
import type { As2Endpoint } from '../../protocols/as2/config.ts';

const run = promisify(execFile);

export async function openssl(args: string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', args, { encoding: 'buffer', maxBuffer: 1 << 30 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args.join(' ')}: ${stderr.toString()}`));
      else resolve(stdout);
    });
    if (input) child.stdin!.end(input);
    else child.stdin!.end();
  });
}

export interface KeyFiles {
  cert: string;
  key: string;
}

export async function makeKey(dir: string, name: string, days = 365): Promise<KeyFiles> {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', String(days), '-subj', `/CN=${name}`]);
  return { cert, key };
}

/** A payload with bare LFs, CRLFs and Shift_JIS bytes (カード売上). */
export const PAYLOAD = Buffer.concat([Buffer.from('HEADER 31\nrecord one\n'), Buffer.from([0x83, 0x4a, 0x81, 0x5b, 0x83, 0x68, 0x94, 0x84, 0x8f, 0xe3]), Buffer.from('\r\nlast line without end')]);

export function payloadEntity(payload: Buffer, fileName = 'URIAGE.dat'): Buffer {
  return Buffer.concat([
    Buffer.from(`Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\nContent-Disposition: attachment; filename="${fileName}"\r\n\r\n`),
    payload,
  ]);
}

/** Splits an S/MIME file as openssl writes it into (headers, body), dropping MIME-Version. */
export function splitSmime(smime: Buffer): { headers: Record<string, string>; body: Buffer } {
  let end = smime.indexOf('\r\n\r\n');
  let sep = 4;
  if (end < 0 || (smime.indexOf('\n\n') >= 0 && smime.indexOf('\n\n') < end)) {
    end = smime.indexOf('\n\n');
    sep = 2;
  }
  const headers: Record<string, string> = {};
  const text = smime.subarray(0, end).toString('latin1').replace(/\r?\n[ \t]+/g, ' ');
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && line.slice(0, i).toLowerCase() !== 'mime-version') headers[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return { headers, body: smime.subarray(end + sep) };
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export function post(port: number, urlPath: string, headers: Record<string, string>, body: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method: 'POST', headers: { ...headers, 'Content-Length': body.length }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

export function as2Headers(from: string, to: string, messageId: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    'AS2-Version': '1.2',
    'AS2-From': from,
    'AS2-To': to,
    'Message-ID': messageId,
    Subject: 'test',
    'MIME-Version': '1.0',
    'Disposition-Notification-To': 'mdn@partner.example',
    'Disposition-Notification-Options': 'signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, sha-256',
    ...extra,
  };
}

/** The MDN in an HTTP answer as an S/MIME file openssl can read. */
export function answerAsSmime(a: { headers: http.IncomingHttpHeaders; body: Buffer }): Buffer {
  return Buffer.concat([Buffer.from(`MIME-Version: 1.0\r\nContent-Type: ${a.headers['content-type']}\r\n\r\n`), a.body]);
}

/** Verifies a signed MDN with openssl against the signer's certificate; returns the report entity. */
export async function opensslVerifyMdn(dir: string, a: { headers: http.IncomingHttpHeaders; body: Buffer }, signerCert: string): Promise<string> {
  const file = path.join(dir, `mdn-${Date.now()}-${Math.random()}.smime`);
  await writeFile(file, answerAsSmime(a));
  return (await openssl(['cms', '-verify', '-in', file, '-CAfile', signerCert, '-binary', '-crlfeol'])).toString('latin1');
}

/** `messageDigest` of a SignedData, as openssl prints it (base64). */
export async function opensslMessageDigest(sigDerFile: string): Promise<string> {
  const out = (await openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', sigDerFile])).toString('latin1');
  const m = /object: messageDigest[\s\S]*?OCTET STRING:\s*\n([\s\S]*?)\n\s*\n?\s*(?:[a-zA-Z]|$)/.exec(out);
  if (!m) throw new Error(`no messageDigest in\n${out}`);
  const hex = [...m[1]!.matchAll(/ - ((?:[0-9a-f]{2}[ -]?)+)/g)].map((x) => x[1]!.replace(/[ -]/g, '')).join('');
  return Buffer.from(hex, 'hex').toString('base64');
}

export interface ListenerStand {
  dir: string;
  ledger: TestLedger;
  spool: SpoolTree;
  listener: As2Listener;
  port: number;
  landed: string[];
  stop(): Promise<void>;
}

export function account(over: Partial<As2Account> & Pick<As2Account, 'keys' | 'partnerCertificates'>): As2Account {
  return { id: 'PARTNER AS2', ourId: 'TSUNAGI', requireSigned: true, requireEncrypted: false, ...over };
}

export async function startListener(
  partners: Array<{ partnerId: string; account: As2Account; endpoint?: As2Endpoint }>,
  listenerOver: Record<string, unknown> = {},
  ctxOver: Partial<ListenerContext> = {},
): Promise<ListenerStand> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-as2-'));
  const ledger = await sqliteLedger();
  const spool = new SpoolTree(path.join(dir, 'spool'));
  await spool.ensure(partners.map((p) => p.partnerId));
  const landed: string[] = [];
  const loaded: As2ListenerPartner[] = partners.map((p) => ({ ...loadPartnership(p.partnerId, p.account), endpoint: p.endpoint }));
  const listener = createAs2Listener(as2ListenerSchema.parse({ host: '127.0.0.1', port: 0, ...listenerOver }), loaded, {
    spool,
    ledger: ledger.ledger,
    log: pino({ level: process.env.TSUNAGI_TEST_LOG ?? 'silent' }),
    onLanded: (_p, final) => void landed.push(final),
    ...ctxOver,
  });
  await listener.start();
  return {
    dir,
    ledger,
    spool,
    listener,
    port: listener.port,
    landed,
    async stop() {
      await listener.stop();
      await ledger.dispose();
    },
  };
}

export async function readInbound(spool: SpoolTree, partnerId: string): Promise<Map<string, Buffer>> {
  const { readdir } = await import('node:fs/promises');
  const out = new Map<string, Buffer>();
  for (const name of await readdir(spool.inbound(partnerId))) if (!name.startsWith('.')) out.set(name, await readFile(path.join(spool.inbound(partnerId), name)));
  return out;
}
