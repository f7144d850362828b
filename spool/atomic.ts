// Durable, atomic file publication: write under a temporary name, fsync, rename, fsync the folder.
// A reader of the folder sees the whole file or nothing.
import { randomBytes } from 'node:crypto';
import { access, open, rename } from 'node:fs/promises';
import path from 'node:path';

export async function pathExists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

export function temporaryPathFor(finalPath: string): string {
  return path.join(path.dirname(finalPath), `.${path.basename(finalPath)}.${randomBytes(4).toString('hex')}.part`);
}

export async function fsyncPath(p: string): Promise<void> {
  const fh = await open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * fsyncs of one key (a path) shared by the callers that come while one runs: they share the next,
 * which starts when the running one ends (that one may have begun before their writes). So
 * each caller's writes are synced when its promise resolves, and N concurrent callers pay two
 * fsyncs rather than N.
 */
export class SharedSyncs {
  private readonly byKey = new Map<string, { running?: Promise<void>; next?: Promise<void> }>();
  constructor(private readonly syncOne: (key: string) => Promise<void>) {}

  sync(key: string): Promise<void> {
    let s = this.byKey.get(key);
    if (!s) this.byKey.set(key, (s = {}));
    const state = s;
    if (state.next) return state.next;
    const start = (): Promise<void> => {
      const run = this.syncOne(key).finally(() => {
        if (state.running !== run) return;
        state.running = undefined;
        if (!state.next) this.byKey.delete(key);
      });
      state.running = run;
      return run;
    };
    if (!state.running) return start();
    const next = state.running.catch(() => undefined).then(() => {
      state.next = undefined;
      return start();
    });
    state.next = next;
    return next;
  }
}

const dirSyncs = new SharedSyncs(fsyncPath);

/** Makes the folder's entries durable (renames into it, new names); concurrent calls for one folder share fsyncs. */
export function fsyncDir(dir: string): Promise<void> {
  return dirSyncs.sync(path.resolve(dir));
}

/** Makes a finished temporary file visible under its final name, durably. */
export async function publishFile(tempPath: string, finalPath: string): Promise<void> {
  await fsyncPath(tempPath);
  await rename(tempPath, finalPath);
  await fsyncDir(path.dirname(finalPath));
}
