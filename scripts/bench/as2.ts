// Benchmark: AS2 round trips between our client and our listener, each in its own process.
//  1. a 100 MB payload, signed (SHA-256) and encrypted (AES-256-CBC, RSA PKCS#1 v1.5), with a signed
//     sync MDN, against `openssl cms -sign | openssl cms -encrypt` then `openssl cms -decrypt |
//     openssl cms -verify` on the same data in the same run (ratio: OpenSSL's time / ours; target
//     >= 0.7); peak RSS of the client and of the listener process (target < 3x the payload);
//  2. 1,000 messages of 10 KB with signed sync MDNs (messages/s; target >= 150).
//   node --import tsx scripts/bench/as2.ts [--mb 100] [--messages 1000] [--concurrency 8] [--dir /tmp]
// (AS2_BENCH_PROFILE=DIR writes CPU profiles of the client and listener processes there.)
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import pino from 'pino';
import { As2Client } from '../../protocols/as2/client.ts';
import { as2EndpointSchema, as2ListenerSchema, loadPartnership, type As2Account } from '../../protocols/as2/config.ts';
import { createAs2Listener } from '../../protocols/as2/listener.ts';
import { openLedger } from '../../spool/ledger/index.ts';
import { SpoolTree } from '../../spool/tree.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    mb: { type: 'string', default: '100' },
    messages: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '8' },
    dir: { type: 'string', default: os.tmpdir() },
    role: { type: 'string' },
    job: { type: 'string' },
  },
});

interface Job {
  dir: string;
  port?: number;
  mb: number;
  messages: number;
  concurrency: number;
}

function account(dir: string, side: 'centre' | 'partner'): As2Account {
  const me = side === 'centre' ? 'centre' : 'partner';
  const other = side === 'centre' ? 'partner' : 'centre';
  return {
    id: side === 'centre' ? 'PARTNER' : 'TSUNAGI',
    ourId: side === 'centre' ? 'TSUNAGI' : 'PARTNER',
    keys: [{ cert: { file: path.join(dir, `${me}.crt`) }, key: { file: path.join(dir, `${me}.key`) } }],
    partnerCertificates: [{ file: path.join(dir, `${other}.crt`) }],
    requireSigned: true,
    requireEncrypted: true,
  };
}

const say = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
const peakRssMb = (pid: number | string) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

if (values.role === 'listener') {
  // The partner's AS2 endpoint (our listener), answering signed sync MDNs.
  const job = JSON.parse(values.job!) as Job;
  const spool = new SpoolTree(path.join(job.dir, 'listener-spool'));
  await spool.ensure(['tsunagi']);
  const ledger = await openLedger(`sqlite:${path.join(job.dir, 'listener.db')}`);
  const listener = createAs2Listener(as2ListenerSchema.parse({ host: '127.0.0.1', port: 0, maxBodyBytes: 2 ** 31 - 1 }), [loadPartnership('tsunagi', account(job.dir, 'partner'))], {
    spool,
    ledger,
    log: pino({ level: 'warn' }),
  });
  await listener.start();
  say({ port: listener.port });
  const input = createInterface({ input: process.stdin });
  input.on('line', () => {
    const u = process.cpuUsage();
    say({ cpuMs: (u.user + u.system) / 1000 });
  });
  await new Promise((r) => input.once('close', r));
  await listener.stop();
  await ledger.close();
  process.exit(0);
}

if (values.role === 'client') {
  const job = JSON.parse(values.job!) as Job;
  const ledger = await openLedger(`sqlite:${path.join(job.dir, 'client.db')}`);
  const endpoint = as2EndpointSchema.parse({ protocol: 'as2', url: `http://127.0.0.1:${job.port}/as2`, sign: 'sha256', encrypt: 'aes256-cbc', keyTransport: 'rsa-pkcs1', mdn: 'sync', signedMdn: true, timeoutSeconds: 600 });
  const client = new As2Client({ partnership: loadPartnership('partner', account(job.dir, 'centre')), endpoint, ledger, log: pino({ level: 'warn' }) });
  const lines = createInterface({ input: process.stdin });
  const next = () => new Promise<string>((r) => lines.once('line', r));
  say({ ready: true });
  await next();
  let t = performance.now();
  await client.push(path.join(job.dir, 'big.dat'), 'BIG.dat');
  say({ big: (performance.now() - t) / 1000, rssMb: peakRssMb('self') });
  await next();
  const names = Array.from({ length: job.messages }, (_, i) => `S_${i}.dat`);
  t = performance.now();
  const cpu0 = process.cpuUsage();
  let i = 0;
  await Promise.all(
    Array.from({ length: job.concurrency }, async () => {
      while (i < names.length) {
        const n = i++;
        await client.push(path.join(job.dir, 'small', `${n % 50}.dat`), names[n]!);
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  say({ small: (performance.now() - t) / 1000, cpuMs: (cpu.user + cpu.system) / 1000 });
  await ledger.close();
  process.exit(0);
}

// ---- the parent: prepare, run OpenSSL's baseline, run ours, print ----
const job: Job = { dir: await mkdtemp(path.join(values.dir!, 'tsunagi-bench-as2-')), mb: Number(values.mb), messages: Number(values.messages), concurrency: Number(values.concurrency) };
const self = fileURLToPath(import.meta.url);
try {
  for (const who of ['centre', 'partner']) {
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-sha256', '-nodes', '-keyout', path.join(job.dir, `${who}.key`), '-out', path.join(job.dir, `${who}.crt`), '-days', '30', '-subj', `/CN=${who}`]);
  }
  const big = path.join(job.dir, 'big.dat');
  await writeFile(big, randomBytes(job.mb * 1_000_000));
  await run('mkdir', [path.join(job.dir, 'small')]);
  for (let i = 0; i < 50; i++) await writeFile(path.join(job.dir, 'small', `${i}.dat`), randomBytes(10_000));

  // OpenSSL: sign | encrypt, then decrypt | verify (binary, DER between the two steps of a pair).
  const k = (f: string) => path.join(job.dir, f);
  const sh = (cmd: string) => run('bash', ['-o', 'pipefail', '-c', cmd], { maxBuffer: 1 << 20 });
  const t0 = performance.now();
  await sh(`openssl cms -sign -binary -md sha256 -signer ${k('centre.crt')} -inkey ${k('centre.key')} -in ${big} | openssl cms -encrypt -binary -aes-256-cbc -outform DER -out ${k('big.p7m')} ${k('partner.crt')}`);
  const t1 = performance.now();
  await sh(`openssl cms -decrypt -binary -inform DER -in ${k('big.p7m')} -recip ${k('partner.crt')} -inkey ${k('partner.key')} | openssl cms -verify -binary -CAfile ${k('centre.crt')} -out ${k('big.out')}`);
  const t2 = performance.now();
  const opensslSeconds = (t2 - t0) / 1000;
  await rm(k('big.p7m'));
  await rm(k('big.out'));

  const start = (role: string, extra: Partial<Job> = {}): { child: ChildProcess; next: () => Promise<Record<string, number>> } => {
    const child = spawn(process.execPath, [...(process.env.AS2_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.AS2_BENCH_PROFILE}`] : []), '--import', 'tsx', self, '--role', role, '--job', JSON.stringify({ ...job, ...extra })], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! });
    const queue: string[] = [];
    const waiters: Array<(l: string) => void> = [];
    lines.on('line', (l) => (waiters.length ? waiters.shift()!(l) : queue.push(l)));
    return { child, next: () => new Promise((r) => (queue.length ? r(JSON.parse(queue.shift()!)) : waiters.push((l) => r(JSON.parse(l))))) };
  };
  const listener = start('listener');
  const { port } = await listener.next();
  const client = start('client', { port });
  await client.next();
  client.child.stdin!.write('go\n');
  const bigRun = await client.next();
  const listenerRss = peakRssMb(listener.child.pid!);
  listener.child.stdin!.write('cpu\n');
  const listenerCpu0 = (await listener.next()).cpuMs!;
  client.child.stdin!.write('go\n');
  const smallRun = await client.next();
  listener.child.stdin!.write('cpu\n');
  const listenerCpu = (await listener.next()).cpuMs! - listenerCpu0;
  listener.child.stdin!.end();
  await new Promise((r) => listener.child.once('exit', r));

  const ratio = opensslSeconds / bigRun.big!;
  const lines = [
    `AS2 benchmark (${new Date().toISOString()}, ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')})`,
    `${job.mb} MB, sign SHA-256 + AES-256-CBC (RSA PKCS#1 v1.5), signed sync MDN:`,
    `  tsunagi client -> tsunagi listener round trip: ${bigRun.big!.toFixed(2)} s`,
    `  openssl sign|encrypt ${((t1 - t0) / 1000).toFixed(2)} s + decrypt|verify ${((t2 - t1) / 1000).toFixed(2)} s = ${opensslSeconds.toFixed(2)} s`,
    `  ratio (openssl / ours): ${ratio.toFixed(2)} (target >= 0.7) ${ratio >= 0.7 ? 'OK' : 'MISSED'}`,
    `  peak RSS: client ${bigRun.rssMb!.toFixed(0)} MB, listener ${listenerRss.toFixed(0)} MB (target < ${3 * job.mb} MB) ${Math.max(bigRun.rssMb!, listenerRss) < 3 * job.mb ? 'OK' : 'MISSED'}`,
    `${job.messages} messages of 10 KB, signed sync MDNs, ${job.concurrency} at a time: ${smallRun.small!.toFixed(2)} s = ${(job.messages / smallRun.small!).toFixed(0)} messages/s (target >= 150) ${job.messages / smallRun.small! >= 150 ? 'OK' : 'MISSED'}`,
    `  CPU per message: client ${(smallRun.cpuMs! / job.messages).toFixed(1)} ms + listener ${(listenerCpu / job.messages).toFixed(1)} ms = ${((smallRun.cpuMs! + listenerCpu) / job.messages).toFixed(1)} ms` +
      ` (what ${os.cpus().length} otherwise idle cores could sustain: ~${((os.cpus().length * 1000) / ((smallRun.cpuMs! + listenerCpu) / job.messages)).toFixed(0)} messages/s)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  await rm(job.dir, { recursive: true, force: true });
}
