import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { bundleFor } from '../../jobs/runners/bundle.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CACHE = path.join(ROOT, 'node_modules/.cache/tsunagi');

test('a bundle is used again while its sources are unchanged and made again when one changes', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-bundle-'));
  const name = `test-bundle-${process.pid}`;
  try {
    const entry = path.join(dir, 'entry.ts');
    await writeFile(entry, "import { word } from './word.ts';\nexport const said: string = word;\nexport const here = import.meta.url;\n");
    await writeFile(path.join(dir, 'word.ts'), "export const word = 'one';\n");
    // sources saved within the last second are not trusted to be in the bundle (no manifest yet)
    await new Promise((r) => setTimeout(r, 1100));
    const first = await bundleFor(entry, name);
    const loaded = (await import(pathToFileURL(first).href)) as { said: string; here: string };
    assert.equal(loaded.said, 'one');
    assert.equal(loaded.here, pathToFileURL(entry).href, 'import.meta.url names the source file');
    assert.equal(await bundleFor(entry, name), first, 'unchanged sources: the same bundle');
    await writeFile(path.join(dir, 'word.ts'), "export const word = 'two, changed';\n");
    const second = await bundleFor(entry, name);
    assert.notEqual(second, first, 'a changed source: a new bundle');
    assert.equal(((await import(pathToFileURL(second).href)) as { said: string }).said, 'two, changed');
  } finally {
    await rm(dir, { recursive: true, force: true });
    for (const f of await readdir(CACHE)) if (f.startsWith(name)) await rm(path.join(CACHE, f), { recursive: true, force: true });
  }
});

test('bin/tsunagi.js runs the CLI from its bundle, not through tsx', () => {
  // no warning that bundling failed, and the manifest names the bundle that ran
  const run = spawnSync(process.execPath, [path.join(ROOT, 'bin/tsunagi.js'), '--version'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^tsunagi \d/);
  assert.doesNotMatch(run.stderr, /through tsx/);
  const manifest = spawnSync(process.execPath, ['-e', `console.log(require(${JSON.stringify(path.join(CACHE, 'cli.json'))}).bundle)`], { encoding: 'utf8' });
  assert.match(manifest.stdout, /node_modules\/\.cache\/tsunagi\/cli-[0-9a-f]{16}\/entry\.mjs/);
});
