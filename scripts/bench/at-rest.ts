// Encryption at rest, the file layer alone: writing and reading one spool file plain and encrypted
// (spool/encrypted-file.ts), in the same run, interleaved, medians of BENCH_ROUNDS rounds. The
// cycle's own figure (scripts/bench/cycle.ts with BENCH_MODES=embedded,embedded+enc,...) includes
// everything else a cycle does; this one shows what the format costs per byte, less noisy under load.
//
//   node --import tsx scripts/bench/at-rest.ts          64 MiB, 5 rounds
//   BENCH_MIB=16 BENCH_ROUNDS=3 node --import tsx scripts/bench/at-rest.ts
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { RecordFileWriter, readRecords } from '../../formats/index.ts';
import { registerSpoolKeys } from '../../spool/encrypted-file.ts';
import { KeyRing, kekFromBytes } from '../../spool/keys.ts';

const MIB = Number(process.env.BENCH_MIB ?? 64);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const RECORD = 200;
const records = Math.floor((MIB << 20) / (RECORD + 2));
const rec = Buffer.alloc(RECORD, 0x41);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

async function once(file: string): Promise<{ write: number; read: number }> {
  const t0 = process.hrtime.bigint();
  const w = new RecordFileWriter(file, 'crlf');
  for (let i = 0; i < records; i++) w.write(rec);
  w.close();
  const t1 = process.hrtime.bigint();
  let n = 0;
  await readRecords(file, { recordLength: RECORD, framing: 'crlf' }, () => void n++);
  const t2 = process.hrtime.bigint();
  if (n !== records) throw new Error(`read ${n} of ${records} records`);
  await rm(file);
  return { write: Number(t1 - t0) / 1e6, read: Number(t2 - t1) / 1e6 };
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-bench-at-rest-'));
const plainDir = path.join(dir, 'plain');
const spoolDir = path.join(dir, 'spool');
await import('node:fs/promises').then(async (fs) => {
  await fs.mkdir(plainDir);
  await fs.mkdir(spoolDir);
});
const undo = registerSpoolKeys(spoolDir, new KeyRing(kekFromBytes(randomBytes(32))));
console.log(`at-rest benchmark: ${records.toLocaleString('en')} records of ${RECORD} bytes (${MIB} MiB) written (fsync) and read back, plain vs encrypted, ${ROUNDS} rounds; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const plain: { write: number; read: number }[] = [];
const enc: { write: number; read: number }[] = [];
try {
  for (let r = 0; r < ROUNDS; r++) {
    plain.push(await once(path.join(plainDir, 'f.dat')));
    enc.push(await once(path.join(spoolDir, 'f.dat')));
  }
} finally {
  undo();
  await rm(dir, { recursive: true, force: true });
}
for (const what of ['write', 'read'] as const) {
  const p = median(plain.map((x) => x[what]));
  const e = median(enc.map((x) => x[what]));
  console.log(`${what.padEnd(5)}: plain ${(MIB / (p / 1000)).toFixed(0).padStart(5)} MiB/s, encrypted ${(MIB / (e / 1000)).toFixed(0).padStart(5)} MiB/s: ${((e / p - 1) * 100).toFixed(1)}% more time`);
}
console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
