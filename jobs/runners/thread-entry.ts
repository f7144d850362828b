// The worker threads' entry point. Under tsx (a fresh clone: no build step) each thread would run
// tsx too: its loader in a hooks thread of its own and every module compiled again, so about
// 10-15 MB and seconds of start per thread (README, Performance). Instead the thread's code is
// one bundle (bundle.js), which a thread loads without any loader. When the bundle cannot be
// made, the threads run through tsx as before.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleFor } from './bundle.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROCESSOR = path.join(HERE, 'embedded-thread-processor.ts');
/** Registers tsx, then loads the processor: the fallback. */
export const TSX_THREAD_FILE = path.join(HERE, 'embedded-thread.js');

let built: Promise<string> | undefined;

/**
 * The file a worker thread runs: the bundle, looked up at the first call in this process (made
 * again only when a source changed; the name is its content's hash, so processes of other versions
 * do not collide), or the tsx entry when bundling fails or TSUNAGI_THREADS_TSX=1 asks for it.
 */
export function threadEntry(): Promise<string> {
  if (process.env.TSUNAGI_THREADS_TSX === '1' || !PROCESSOR.endsWith('.ts')) return Promise.resolve(TSX_THREAD_FILE);
  built ??= bundleFor(PROCESSOR, 'embedded-thread').catch((err: unknown) => {
    process.emitWarning(`worker threads run through tsx: bundling them failed (${(err as Error).message})`);
    return TSX_THREAD_FILE;
  });
  return built;
}
