// Benchmark: 1 GiB of 200-byte records over loopback with 全銀TCP/IP (maxText 32,000), plain and
// TLS, against a plain TCP copy and a plain TLS socket copy of the same bytes (file -> socket ->
// file) in the same run: zengin plain is compared with the TCP copy, zengin TLS with the TLS copy.
// The copies put the file on disk as the 全銀 receiver does (a background fdatasync every
// CHECKPOINT_BYTES, an fsync before the answer), so the ratio compares like with like.
// The receiver (our listener, or the copy's server) runs here; the sender in a child process.
// Each run measures each pair ABBA (copy, 全銀, 全銀, copy; the next run BAAB); a run's ratio is
// that of the sums, the ratio printed is the median of the per-run ratios, beside the spread, the
// ratio of the best transfers, and CPU ratios (both sides; the receiver's main thread, the one
// that decrypts TLS and frames: /proc, Linux). On a loaded 2-core machine judge by --runs 5 or more.
//   npx tsx scripts/bench/zengin.ts [--mib 1024] [--dir /tmp] [--runs 3] [--at-rest]
//   (--at-rest: the listener's spool encrypts, as the starter config does;
//   --only tcp|tls|zengin-plain|zengin-tls: that transfer alone, e.g. under node --cpu-prof)
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, fdatasync, openSync } from 'node:fs';
import { mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { ZenginClient } from '../../protocols/zengin/client.ts';
import type { ZenginEndpointInput } from '../../protocols/zengin/config.ts';
import { createZenginListener } from '../../protocols/zengin/listener.ts';
import { CHECKPOINT_BYTES } from '../../protocols/zengin/restart-store.ts';
import { registerSpoolKeys, spoolFileSize } from '../../spool/encrypted-file.ts';
import { KeyRing, kekFromBytes } from '../../spool/keys.ts';
import { openLedger } from '../../spool/ledger/index.ts';
import { SpoolTree } from '../../spool/tree.ts';

const { values } = parseArgs({
  options: { mib: { type: 'string', default: '1024' }, dir: { type: 'string', default: os.tmpdir() }, runs: { type: 'string', default: '3' }, sender: { type: 'string' }, only: { type: 'string' }, 'at-rest': { type: 'boolean', default: false } },
});

// The sending side runs in its own process (as it would on the partner's machine): the parent
// starts it, waits for 'ready', starts the clock with 'go' and stops it at 'done'.
if (values.sender) {
  const job = JSON.parse(values.sender) as { kind: 'tcp'; port: number; src: string; ca?: string } | { kind: 'zengin'; endpoint: ZenginEndpointInput; src: string };
  const cpu = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1e6; };
  process.stdout.write(`ready ${cpu()}\n`);
  await new Promise((r) => process.stdin.once('data', r));
  if (job.kind === 'tcp') {
    const socket = job.ca ? tls.connect({ port: job.port, host: '127.0.0.1', ca: readFileSync(job.ca) }) : net.connect(job.port, '127.0.0.1');
    await new Promise<void>((r) => socket.once(job.ca ? 'secureConnect' : 'connect', () => r()));
    const acked = new Promise((r) => socket.once('data', r));
    for await (const chunk of createReadStream(job.src, { highWaterMark: 4 << 20 })) {
      if (!socket.write(chunk)) await once(socket, 'drain');
    }
    socket.end();
    await acked;
    socket.destroy();
  } else {
    await new ZenginClient(job.endpoint).push(job.src, 'ZGN310000001');
  }
  process.stdout.write(`done ${cpu()}\n`);
  process.exit(0);
}

/** CPU seconds of both sides (this process receives) during the last timed transfer; receiverMain: its main thread alone. */
export const lastCpu = { sender: 0, receiver: 0, receiverMain: 0 };

/**
 * CPU seconds (user + system) of this process's main thread, from /proc (Linux; NaN elsewhere):
 * the thread that decrypts TLS, frames and copies, apart from the hash worker and the thread pool.
 */
function mainThreadCpu(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
}

/** Runs the sender in a child process; returns the seconds from 'go' to 'done'. */
async function timeSender(job: object): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, '--sender', JSON.stringify(job)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = child.stdout!.setEncoding('utf8');
  // resolves with the number the sender prints after `want` (its CPU seconds so far)
  const next = (want: string) =>
    new Promise<number>((resolve, reject) => {
      let seen = '';
      const on = (d: string) => {
        seen += d;
        const m = new RegExp(`${want} ([0-9.]+)\\n`).exec(seen);
        if (m) {
          lines.off('data', on);
          resolve(Number(m[1]));
        }
      };
      lines.on('data', on);
      child.once('exit', (code) => reject(new Error(`sender exited with ${code} before '${want}'`)));
    });
  const senderCpu0 = await next('ready');
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const m0 = mainThreadCpu();
  child.stdin!.write('go\n');
  const senderCpu1 = await next('done');
  const c = process.cpuUsage(c0);
  lastCpu.receiverMain = mainThreadCpu() - m0;
  // CLOCK_MONOTONIC seconds, for `perf record -k mono` + `perf report --time FROM,TO` over the transfer alone
  if (values.only) console.log(`  timed window (monotonic s): ${(Number(t0) / 1e9).toFixed(6)},${(Number(process.hrtime.bigint()) / 1e9).toFixed(6)}`);
  lastCpu.sender = senderCpu1 - senderCpu0;
  lastCpu.receiver = (c.user + c.system) / 1e6;
  return Number(process.hrtime.bigint() - t0) / 1e9;
}
const RECORD = 200;
const MAX_TEXT = 32000;
const records = Math.floor((Number(values.mib) * 1024 * 1024) / RECORD);
const size = records * RECORD;
const runs = Number(values.runs);

const work = await mkdtemp(path.join(values.dir!, 'zengin-bench-'));
const src = path.join(work, 'source.dat');

async function makeSource(): Promise<void> {
  // Records with a header-like prefix and random bodies; 1 MiB-ish random block reused (content does not matter to the protocol).
  const block = randomBytes(RECORD * 5000);
  Buffer.from('131'.padEnd(RECORD, ' ')).copy(block, 0);
  const fh = await open(src, 'w');
  let left = size;
  while (left > 0) {
    const n = Math.min(left, block.length);
    await fh.write(block, 0, n);
    left -= n;
  }
  await fh.close();
}

function mbps(seconds: number): number {
  return size / 1e6 / seconds;
}

/** The same bytes over a plain socket (or, with pki, a TLS socket with the listener's certificate). */
async function tcpCopy(pki?: string): Promise<number> {
  const dest = path.join(work, 'tcp-copy.dat');
  // Half-open, so the server can answer after the sender's end of stream.
  const onSocket = (socket: net.Socket) => {
    const fd = openSync(dest, 'w');
    const out = createWriteStream(dest, { fd, highWaterMark: 4 << 20 });
    // Like the zengin receiver (restart-store.ts): a background fdatasync every CHECKPOINT_BYTES
    // while the file grows, one at a time; the bytes are on disk (fsync) before the sender hears back.
    let unsynced = 0;
    let syncing = false;
    socket.on('data', (chunk: Buffer) => {
      unsynced += chunk.length;
      if (unsynced >= CHECKPOINT_BYTES && !syncing && !out.closed) {
        unsynced = 0;
        syncing = true;
        fdatasync(fd, () => (syncing = false));
      }
    });
    socket.pipe(out).on('finish', async () => {
      const fh = await open(dest, 'r');
      await fh.sync();
      await fh.close();
      socket.end('k');
    });
  };
  const server = pki
    ? tls.createServer({ allowHalfOpen: true, cert: readFileSync(path.join(pki, 'server.crt')), key: readFileSync(path.join(pki, 'server.key')) }, onSocket)
    : net.createServer({ allowHalfOpen: true }, onSocket);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const seconds = await timeSender({ kind: 'tcp', port: (server.address() as net.AddressInfo).port, src, ca: pki ? path.join(pki, 'ca.crt') : undefined });
  server.close();
  if ((await stat(dest)).size !== size) throw new Error('tcp copy is short');
  await rm(dest);
  return seconds;
}

async function makeCerts(): Promise<string> {
  const pki = path.join(work, 'pki');
  execFileSync('mkdir', ['-p', pki]);
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: pki, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=bench-ca', '-days', '1');
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  await writeFile(path.join(pki, 'ext'), 'subjectAltName=IP:127.0.0.1\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '1', '-extfile', 'ext');
  return pki;
}

async function zengin(tls: boolean, pki: string): Promise<number> {
  const root = await mkdtemp(path.join(work, 'spool-'));
  const spool = new SpoolTree(root);
  const undoKeys = values['at-rest'] ? registerSpoolKeys(root, new KeyRing(kekFromBytes(randomBytes(32)))) : () => undefined;
  await spool.ensure(['bench']);
  const ledger = await openLedger(`sqlite:${path.join(root, 'ledger.db')}`);
  await writeFile(path.join(root, 'pw'), 'BENCH1');
  const files = [{ zenginName: 'ZGN310000001', accessKey: 'KEY031', fileType: '31', direction: 'send' as const, recordLength: RECORD }];
  const listener = createZenginListener(
    {
      host: '127.0.0.1',
      port: 0,
      ownCode: 'F0F0F0F0F00001',
      ...(tls ? { tlsPort: 0, tls: { cert: { file: path.join(pki, 'server.crt') }, key: { file: path.join(pki, 'server.key') } } } : {}),
    },
    { bench: { partnerCode: 'F1F0F0F0F00001', password: { file: path.join(root, 'pw') }, maxText: MAX_TEXT, files } },
    { spool, ledger, log: pino({ level: 'warn' }) },
  );
  await listener.start();
  try {
    const endpoint: ZenginEndpointInput = {
      protocol: 'zengin',
      host: '127.0.0.1',
      port: tls ? listener.tlsPort : listener.port,
      tls: tls ? { ca: { file: path.join(pki, 'ca.crt') } } : undefined,
      ownCode: 'F1F0F0F0F00001',
      partnerCode: 'F0F0F0F0F00001',
      password: { file: path.join(root, 'pw') },
      maxText: MAX_TEXT,
      restartAttempts: 0,
      files,
    };
    const seconds = await timeSender({ kind: 'zengin', endpoint, src });
    const [landed] = await readdir(spool.inbound('bench'));
    if (!landed || (await spoolFileSize(path.join(spool.inbound('bench'), landed))) !== size) throw new Error('zengin push is short');
    return seconds;
  } finally {
    await listener.stop();
    await ledger.close();
    undoKeys();
    await rm(root, { recursive: true, force: true });
  }
}

try {
  console.log(`source: ${records} records of ${RECORD} bytes = ${size} bytes, maxText ${MAX_TEXT}, ${runs} run(s) each, medians kept${values['at-rest'] ? ', listener spool encrypted at rest' : ''}`);
  await makeSource();
  const pki = await makeCerts();
  type Figure = { s: number; cpuSender: number; cpuReceiver: number; cpuReceiverMain: number };
  const all = { tcp: [] as Figure[], tlsCopy: [] as Figure[], plain: [] as Figure[], tls: [] as Figure[] };
  const ratios = { plain: [] as number[], tls: [] as number[] };
  // Each measurement starts with no dirty pages left by the one before (they share the disk).
  const settle = () => execFileSync('sync');
  const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
  const cpu = (f: Figure) => `CPU s sender ${f.cpuSender.toFixed(2)}, receiver ${f.cpuReceiver.toFixed(2)} (main thread ${f.cpuReceiverMain.toFixed(2)})`;
  const only = values.only;
  // --only NAME: that one transfer alone (to profile it), the rest NaN
  const measure = async (name: string, f: () => Promise<number>): Promise<Figure> => {
    if (only && only !== name) return { s: NaN, cpuSender: NaN, cpuReceiver: NaN, cpuReceiverMain: NaN };
    settle();
    const seconds = await f();
    const fig = { s: seconds, cpuSender: lastCpu.sender, cpuReceiver: lastCpu.receiver, cpuReceiverMain: lastCpu.receiverMain };
    console.log(`  ${name.padEnd(13)} ${seconds.toFixed(2).padStart(6)} s ${mbps(seconds).toFixed(0).padStart(5)} MB/s, ${cpu(fig)}`);
    return fig;
  };
  // Each run measures each pair ABBA (copy, 全銀, 全銀, copy; the next run BAAB), back to back, so
  // that a load that drifts within the run weighs on both alike; the run's ratio is that of the sums.
  const quad = async (i: number, a: [string, () => Promise<number>], b: [string, () => Promise<number>]): Promise<[Figure[], Figure[]]> => {
    const [first, second] = i % 2 === 0 ? [a, b] : [b, a];
    const x1 = await measure(...first);
    const y1 = await measure(...second);
    const y2 = await measure(...second);
    const x2 = await measure(...first);
    return i % 2 === 0 ? [[x1, x2], [y1, y2]] : [[y1, y2], [x1, x2]];
  };
  const sum = (fs: Figure[]) => fs.reduce((t, f) => t + f.s, 0);
  for (let i = 0; i < runs; i++) {
    const [tcp, plain] = await quad(i, ['tcp', () => tcpCopy()], ['zengin-plain', () => zengin(false, pki)]);
    const [tlsCopy, tlsZ] = await quad(i, ['tls', () => tcpCopy(pki)], ['zengin-tls', () => zengin(true, pki)]);
    all.tcp.push(...tcp); all.plain.push(...plain); all.tlsCopy.push(...tlsCopy); all.tls.push(...tlsZ);
    ratios.plain.push(sum(tcp) / sum(plain)); ratios.tls.push(sum(tlsCopy) / sum(tlsZ));
    console.log(`run ${i + 1}: plain ${(sum(tcp) / sum(plain)).toFixed(2)} of TCP copy, TLS ${(sum(tlsCopy) / sum(tlsZ)).toFixed(2)} of TLS copy; load average ${load()}`);
  }
  const median = (xs: number[]) => {
    const o = [...xs].sort((a, b) => a - b);
    return o.length % 2 ? o[(o.length - 1) / 2]! : (o[o.length / 2 - 1]! + o[o.length / 2]!) / 2;
  };
  const med = (fs: Figure[]): Figure => ({ s: median(fs.map((f) => f.s)), cpuSender: median(fs.map((f) => f.cpuSender)), cpuReceiver: median(fs.map((f) => f.cpuReceiver)), cpuReceiverMain: median(fs.map((f) => f.cpuReceiverMain)) });
  const row = (name: string, fs: Figure[]) => {
    const f = med(fs);
    return `${name.padEnd(16)} ${f.s.toFixed(2).padStart(7)} s ${mbps(f.s).toFixed(0).padStart(6)} MB/s, ${cpu(f)}`;
  };
  const cpuRatio = (base: Figure[], z: Figure[]) => {
    const b = med(base);
    const f = med(z);
    return ((b.cpuSender + b.cpuReceiver) / (f.cpuSender + f.cpuReceiver)).toFixed(2);
  };
  // The least disturbed transfer of each kind (a loaded machine only ever slows one down).
  const best = (base: Figure[], z: Figure[]) => (Math.min(...base.map((f) => f.s)) / Math.min(...z.map((f) => f.s))).toFixed(2);
  const mainRatio = (base: Figure[], z: Figure[]) => (med(base).cpuReceiverMain / med(z).cpuReceiverMain).toFixed(2);
  const spread = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
  console.log(`load average ${load()}; ${runs} run(s) of ABBA pairs, figures are medians of ${runs * 2} transfers; the ratio is the median of the per-run ratios`);
  console.log(row('plain TCP copy', all.tcp));
  console.log(`${row('zengin plain', all.plain)}   ratio to TCP copy ${median(ratios.plain).toFixed(2)} (target >= 0.6; runs ${spread(ratios.plain)}; best ${best(all.tcp, all.plain)}; CPU ${cpuRatio(all.tcp, all.plain)}, receiver main thread ${mainRatio(all.tcp, all.plain)})`);
  console.log(row('plain TLS copy', all.tlsCopy));
  console.log(`${row('zengin TLS', all.tls)}   ratio to TLS copy ${median(ratios.tls).toFixed(2)} (target >= 0.7; runs ${spread(ratios.tls)}; best ${best(all.tlsCopy, all.tls)}; CPU ${cpuRatio(all.tlsCopy, all.tls)}, receiver main thread ${mainRatio(all.tlsCopy, all.tls)})`);
} finally {
  await rm(work, { recursive: true, force: true });
}
