// The worker threads' entry point. Under tsx (a fresh clone: no build step) each thread would run
// tsx too: its loader in a hooks thread of its own and every module compiled again, so about
// 10-15 MB and seconds of start per thread (README, Performance). Instead the
// thread's code is bundled once per process with esbuild (tsx's own compiler) into one plain
// ES module under node_modules/.cache/tsunagi/, which a thread loads without any loader. Packages
// stay imports (resolved from node_modules as usual); `import.meta.url` keeps naming each source
// file, so data files beside the sources (layouts, code-page tables) are found where they are.
// When the bundle cannot be made, the threads run through tsx as before.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROCESSOR = path.join(HERE, 'embedded-thread-processor.ts');
/** Registers tsx, then loads the processor: the fallback. */
export const TSX_THREAD_FILE = path.join(HERE, 'embedded-thread.js');
const CACHE_DIR = path.resolve(HERE, '../../node_modules/.cache/tsunagi');

let built: Promise<string> | undefined;

/**
 * The file a worker thread runs: the bundle, made at the first call in this process (under a
 * second on this machine; the name is its content's hash, so processes of other versions do not
 * collide), or the tsx entry when bundling fails or TSUNAGI_THREADS_TSX=1 asks for it.
 */
export function threadEntry(): Promise<string> {
  if (process.env.TSUNAGI_THREADS_TSX === '1' || !PROCESSOR.endsWith('.ts')) return Promise.resolve(TSX_THREAD_FILE);
  built ??= bundle().catch((err: unknown) => {
    process.emitWarning(`worker threads run through tsx: bundling them failed (${(err as Error).message})`);
    return TSX_THREAD_FILE;
  });
  return built;
}

async function bundle(): Promise<string> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [PROCESSOR],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    write: false,
    outfile: path.join(CACHE_DIR, 'embedded-thread.mjs'),
    // Not loaded unless the process runs with --enable-source-maps (a parsed map costs memory in
    // every thread); without it a stack names the bundle's lines, which keep the functions' names
    // and a comment with each source file's path.
    sourcemap: 'linked',
    logLevel: 'silent',
    plugins: [
      {
        name: 'source-file-urls',
        setup(b) {
          b.onLoad({ filter: /\.ts$/ }, async (args) => ({
            loader: 'ts',
            contents: (await readFile(args.path, 'utf8')).replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)),
          }));
        },
      },
    ],
  });
  const code = result.outputFiles.find((f) => f.path.endsWith('.mjs'))!;
  const map = result.outputFiles.find((f) => f.path.endsWith('.map'))!;
  const name = `embedded-thread-${createHash('sha256').update(code.contents).digest('hex').slice(0, 16)}`;
  const file = path.join(CACHE_DIR, `${name}.mjs`);
  if (await stat(file).then(() => true, () => false)) return file;
  await mkdir(CACHE_DIR, { recursive: true });
  // Written under a temporary name and renamed: another process may be writing the same file.
  const text = Buffer.from(code.text.replace(/\/\/# sourceMappingURL=.*\s*$/, `//# sourceMappingURL=${name}.mjs.map\n`));
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(`${temp}.map`, map.contents);
  await rename(`${temp}.map`, `${file}.map`);
  await writeFile(temp, text);
  await rename(temp, file);
  await pruneOldBundles(file);
  return file;
}

/** Bundles of other versions of the code, untouched for a week (a process still running one started its threads long ago). */
async function pruneOldBundles(keep: string): Promise<void> {
  const weekAgo = Date.now() - 7 * 24 * 3600_000;
  for (const name of await readdir(CACHE_DIR).catch(() => [])) {
    const file = path.join(CACHE_DIR, name);
    if (!name.startsWith('embedded-thread-') || file.startsWith(keep)) continue;
    const old = await stat(file).then((s) => s.mtimeMs < weekAgo, () => false);
    if (old) await rm(file, { force: true });
  }
}
