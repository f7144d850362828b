import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tmpPath } from './helpers.ts';

const bin = fileURLToPath(new URL('../../bin/tsunagi.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

test('gen + validate --json: one object per planted error, exit 3; a clean file exits 0', () => {
  const bad = tmpPath('cli31.dat');
  const g = run('gen', '31', '--records', '60', '--seed', '5', '--errors', '--out', bad);
  assert.equal(g.status, 0, g.stderr);
  const planted = g.stdout.trim().split('\n').slice(1).map((l) => JSON.parse(l));
  const v = run('validate', bad, '--json');
  assert.equal(v.status, 3);
  const lines = v.stdout.trim().split('\n');
  assert.deepEqual(lines.map((l) => JSON.parse(l)), planted);
  assert.match(lines[0]!, /^\{"recordNo":\d+,"bytePos":\d+,"code":"E\d{3}","field":"[a-zA-Z]*"\}$/);
  const good = tmpPath('cli31ok.dat');
  assert.equal(run('gen', '31', '--records', '10', '--out', good).status, 0);
  const ok = run('validate', good, '--json');
  assert.deepEqual([ok.status, ok.stdout], [0, '']);
});

test('bad usage exits 2', () => {
  assert.equal(run('validate').status, 2);
  assert.equal(run('validate', '/nonexistent/file').status, 2);
  assert.equal(run('validate', tmpPath(), '--encoding', 'utf8').status, 2);
  assert.equal(run('validate', tmpPath(), '--nope').status, 2);
  assert.equal(run('gen', '31', '--out', tmpPath()).status, 2);
  assert.equal(run('convert', tmpPath(), '--to', 'sales.data').status, 2);
});

test('convert: --from/--to/--out and code page flags', () => {
  const src = tmpPath('cli41.dat');
  assert.equal(run('gen', '41', '--records', '20', '--out', src).status, 0);
  const out = tmpPath('cli41-lf.dat');
  const c = run('convert', src, '--from', 'validity.data', '--to', 'validity.data', '--out', out, '--out-framing', 'lf', '--out-encoding', 'jis8');
  assert.equal(c.status, 0, c.stderr);
  const v = run('validate', out, '--framing', 'lf', '--encoding', 'jis8', '--json');
  assert.deepEqual([v.status, v.stdout], [0, '']);
});
