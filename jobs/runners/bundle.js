// One TypeScript entry point and everything of ours it imports, bundled with esbuild (tsx's own
// compiler) into one plain ES module under node_modules/.cache/tsunagi/, which loads without any
// loader: no tsx hooks thread, no per-module compilation, no source map per module in memory.
// Used for the CLI's own process (bin/tsunagi.js) and for the worker threads (thread-entry.ts).
// Packages stay imports (resolved from node_modules as usual); `import.meta.url` keeps naming each
// source file, so data files beside the sources (layouts, code-page tables) are found where they
// are. Plain JS, so that bin/tsunagi.js can use it before anything can load TypeScript.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CACHE_DIR = path.join(ROOT, 'node_modules/.cache/tsunagi');
/** Spelt so that this file's own copy in a bundle does not have it replaced. */
const META_URL = ['import', 'meta', 'url'].join('.');

/**
 * The bundle of `entry` (an absolute path to a .ts file): `<name>-<content hash>/entry.mjs`. A
 * manifest beside it lists every source file that went in with its size and modification time: while
 * none has changed, the bundle is used without starting esbuild (a few ms of stats, not a second).
 */
export async function bundleFor(entry, name) {
  const manifestFile = path.join(CACHE_DIR, `${name}.json`);
  const known = await readFile(manifestFile, 'utf8').then(JSON.parse, () => undefined);
  if (known && known.entry === entry && (await unchanged(known.inputs))) {
    if (await exists(known.bundle)) return known.bundle;
  }
  const startedAt = Date.now();
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [entry],
    absWorkingDir: ROOT,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    write: false,
    metafile: true,
    // A chunk per dynamic import (the CLI's commands): a command loads its own code and packages only.
    splitting: true,
    outdir: path.join(CACHE_DIR, name),
    entryNames: 'entry',
    chunkNames: 'chunk-[hash]',
    outExtension: { '.js': '.mjs' },
    // Not loaded unless the process runs with --enable-source-maps (a parsed map costs memory in
    // every thread); without it a stack names the bundle's lines, which keep the functions' names
    // and a comment with each source file's path.
    sourcemap: 'linked',
    logLevel: 'silent',
    plugins: [
      {
        name: 'source-file-urls',
        setup(b) {
          // .js too: this file, inside the CLI's bundle, must still find the checkout from its own path
          b.onLoad({ filter: /\.[jt]s$/ }, async (args) => ({
            loader: args.path.endsWith('.ts') ? 'ts' : 'js',
            contents: (await readFile(args.path, 'utf8')).replaceAll(META_URL, JSON.stringify(pathToFileURL(args.path).href)),
          }));
        },
      },
    ],
  });
  const hash = createHash('sha256');
  for (const f of result.outputFiles) hash.update(f.path).update(f.contents);
  const dir = path.join(CACHE_DIR, `${name}-${hash.digest('hex').slice(0, 16)}`);
  const file = path.join(dir, 'entry.mjs');
  if (!(await exists(file))) {
    // Written into a temporary folder and renamed: another process may be writing the same bundle.
    const temp = `${dir}.${process.pid}.tmp`;
    await rm(temp, { recursive: true, force: true });
    await mkdir(temp, { recursive: true });
    for (const f of result.outputFiles) await writeFile(path.join(temp, path.relative(path.join(CACHE_DIR, name), f.path)), f.contents);
    await rename(temp, dir).catch(async (err) => {
      await rm(temp, { recursive: true, force: true });
      if (!(await exists(file))) throw err;
    });
    await pruneOldBundles(name, dir);
  }
  const inputs = [];
  for (const input of Object.keys(result.metafile.inputs)) {
    const s = await stat(path.resolve(ROOT, input));
    inputs.push([input, s.size, s.mtimeMs]);
  }
  // A source saved while esbuild ran may not be in this bundle: no manifest, so the next start builds again.
  if (inputs.every(([, , mtimeMs]) => mtimeMs < startedAt - 1000)) {
    const temp = `${manifestFile}.${process.pid}.tmp`;
    await writeFile(temp, JSON.stringify({ entry, bundle: file, inputs }));
    await rename(temp, manifestFile);
  }
  return file;
}

/** Imports `entry` from its bundle; through tsx when the bundle cannot be made (with a warning that says why). */
export async function importBundled(entry, name) {
  let file;
  try {
    file = await bundleFor(entry, name);
  } catch (err) {
    process.emitWarning(`${path.basename(entry)} runs through tsx: bundling it failed (${err.message})`);
    const { register } = await import('tsx/esm/api');
    register();
    return import(pathToFileURL(entry).href);
  }
  return import(pathToFileURL(file).href);
}

async function unchanged(inputs) {
  const now = await Promise.all(inputs.map(([input]) => stat(path.resolve(ROOT, input)).catch(() => undefined)));
  return inputs.every(([, size, mtimeMs], i) => now[i] !== undefined && now[i].size === size && now[i].mtimeMs === mtimeMs);
}

const exists = (file) => stat(file).then(() => true, () => false);

/** Bundles of other versions of the code, untouched for a week (a process still running one started its threads long ago). */
async function pruneOldBundles(name, keep) {
  const weekAgo = Date.now() - 7 * 24 * 3600_000;
  for (const entry of await readdir(CACHE_DIR).catch(() => [])) {
    const file = path.join(CACHE_DIR, entry);
    if (!entry.startsWith(`${name}-`) || file === keep) continue;
    const old = await stat(file).then((s) => s.mtimeMs < weekAgo, () => false);
    if (old) await rm(file, { recursive: true, force: true });
  }
}

// `node jobs/runners/bundle.js FILE.ts NAME [args]`: runs FILE.ts from its bundle, as bin/tsunagi.js
// runs the CLI (the cycle benchmark's embedded runs).
// Once: the bundle that runs may hold a copy of this file, whose import.meta.url names it too.
const RUNNING = Symbol.for('tsunagi.bundle.running');
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href && !globalThis[RUNNING]) {
  globalThis[RUNNING] = true;
  const [node, , entry, name, ...rest] = process.argv;
  process.argv = [node, path.resolve(entry), ...rest]; // as `node FILE.ts args` would have them
  await importBundled(path.resolve(entry), name);
}
