// Outputs (issue 12): a failed convert leaves no partial file (and an earlier output untouched); a
// reader that closes the pipe ends the output quietly; gen takes --file-seq and its defaults are a
// merchant the starter config knows, so a newcomer's first two uploads both go through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { generateFile } from '../../formats/index.ts';
import { initCentre } from '../../jobs/starter.ts';
import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { runCycle } from '../../jobs/cycle.ts';
import { createLogger } from '../../jobs/log.ts';

const BIN = path.resolve('bin/tsunagi.js');
const run = promisify(execFile);
const tsunagi = (args: string[]) => run(process.execPath, [BIN, ...args]).then((r) => ({ code: 0, ...r }), (e) => e as { code: number; stdout: string; stderr: string });

test('convert: a failure leaves no output (and an earlier one as it was); validate --json | head ends quietly', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-out-'));
  try {
    const src = path.join(dir, 'in.dat');
    await generateFile('31', { records: 3000, seed: 3, out: src });
    const bytes = await readFile(src);
    bytes[202 * 2000] = 0x37; // record 2001: recordType '7', unknown: the conversion fails there
    await writeFile(src, bytes);
    const out = path.join(dir, 'out.dat');
    const fresh = await tsunagi(['convert', src, '--from', 'sales', '--to', 'sales.company120', '--out', out]);
    assert.equal(fresh.code, 3, fresh.stderr);
    assert.deepEqual(await readdir(dir), ['in.dat'], 'no partial or temporary file');
    await writeFile(out, 'the earlier output');
    await tsunagi(['convert', src, '--from', 'sales', '--to', 'sales.company120', '--out', out]);
    assert.equal(await readFile(out, 'utf8'), 'the earlier output');
    assert.deepEqual((await readdir(dir)).sort(), ['in.dat', 'out.dat']);

    // Many errors, one line each; the reader stops after the first.
    const noisy = path.join(dir, 'noisy.dat');
    await generateFile('31', { records: 20000, seed: 4, errors: true, merchantNo: 'X', out: noisy });
    const child = spawn(process.execPath, [BIN, 'validate', noisy, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const first = await new Promise<string>((resolve) => child.stdout.once('data', (c: Buffer) => resolve(c.toString().split('\n')[0]!)));
    child.stdout.destroy(); // `head -1` exits
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    assert.match(first, /^\{"recordNo":\d+/);
    assert.equal(stderr, '', 'no EPIPE stack trace');
    assert.ok(code === 0 || code === 3, `exit ${code}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('gen --file-seq, with defaults the starter config knows: two first uploads both accepted whole', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-newcomer-'));
  try {
    const { configFile } = await initCentre(dir);
    for (const seq of ['1', '2']) {
      const r = await tsunagi(['gen', '31', '--records', '10', '--seed', seq, '--file-seq', seq, '--out', path.join(dir, `u${seq}.dat`)]);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal((await readFile(path.join(dir, 'u2.dat'), 'latin1')).slice(94, 100), '000002', 'fileSeq in the header');
    assert.equal((await tsunagi(['gen', '31', '--records', '1', '--file-seq', 'x', '--out', path.join(dir, 'bad.dat')])).code, 2);
    for (const seq of ['1', '2']) await copyFile(path.join(dir, `u${seq}.dat`), path.join(dir, `spool/partners/m-tokyo/inbound/u${seq}.dat`));
    const centre = await openCentre(configFile, { log: createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) }) });
    const engine = await startEngine(centre, { threads: 0 });
    try {
      const summary = await runCycle(engine, { date: new Date(Date.now() + 9 * 3600_000).toISOString().slice(0, 10).replaceAll('-', '') });
      assert.equal(summary.filesIn, 2);
      assert.deepEqual([summary.filesRejected, summary.recordsRejected, summary.recordsAccepted], [0, 0, 20]);
    } finally {
      await engine.stop();
      await centre.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
