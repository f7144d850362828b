import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { threadEntry, TSX_THREAD_FILE } from '../../jobs/runners/thread-entry.ts';

test('the worker threads run a bundle that needs no loader, and find the data files beside the sources', async () => {
  const entry = await threadEntry();
  assert.notEqual(entry, TSX_THREAD_FILE, 'bundling failed: the threads would run through tsx');
  assert.match(entry, /node_modules\/\.cache\/tsunagi\/embedded-thread-[0-9a-f]{16}\/entry\.mjs$/);
  const code = await readFile(entry, 'utf8');
  assert.equal(code.includes('import.meta.url'), false, 'every import.meta.url names its source file');
  assert.ok(code.includes(`"${new URL('../../formats/layouts.ts', import.meta.url).href}"`), 'the layouts are looked up beside formats/layouts.ts');
  assert.equal(await threadEntry(), entry, 'bundled once per process');
  // The bundle loads in a plain thread (no tsx) and runs a job: a warm-up with no config fails
  // inside openCentre, after every module (and the code-page tables) loaded.
  const worker = new Worker(entry, { env: { ...process.env, TSUNAGI_CONFIG: path.join(import.meta.dirname, 'no-such-config.yaml') } });
  try {
    const reply = await new Promise<{ type: string; error?: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.postMessage({ type: 'run', id: 1, kind: 'warm-up', input: {} });
    });
    assert.equal(reply.type, 'done');
    assert.match(reply.error ?? '', /no-such-config\.yaml/);
  } finally {
    await worker.terminate();
  }
});
