// Shared helpers of the formats tests: temp files and glibc iconv.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const tmp = mkdtempSync(join(tmpdir(), 'tsunagi-formats-test-'));
let n = 0;
export function tmpPath(name = 'file.dat'): string {
  return join(tmp, `${++n}-${name}`);
}
export function writeTmp(bytes: Buffer | string, name?: string): string {
  const p = tmpPath(name);
  writeFileSync(p, bytes);
  return p;
}

/** glibc iconv; null when it refuses the input. */
export function iconv(from: string, to: string, input: Buffer): Buffer | null {
  const r = spawnSync('iconv', ['-f', from, '-t', to], { input, maxBuffer: 1 << 26 });
  return r.status === 0 ? r.stdout : null;
}
