// Running under a supervisor (systemd, a shell's `&`): the real process id in a pid file, and no
// orphan left behind when `npx tsunagi serve` is stopped through npm's pid.
import { readFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** Writes this process's id (node's own, not npm's) to `file`, atomically; returns a remover. */
export async function writePidFile(file: string): Promise<() => Promise<void>> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${process.pid}\n`);
  await rename(temp, file);
  return async () => {
    // Only our own: a successor may have written its pid there already.
    try {
      if (readFileSync(file, 'utf8').trim() === String(process.pid)) await rm(file, { force: true });
    } catch {
      // gone already
    }
  };
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** npm's own processes between us and whoever ran `npx`: npm exec, its `sh -c`, the npx shim. */
function launcherChain(): number[] {
  const chain: number[] = [];
  for (let pid: number | undefined = process.ppid; pid && pid > 1 && chain.length < 6; pid = parentOf(pid)) {
    if (!/(^|[\s/])(npm|npx)(-cli(\.js)?)?(\s|$)|^sh -c /.test(commandOf(pid))) break;
    chain.push(pid);
  }
  return chain;
}

/**
 * Started through npm (`npx tsunagi serve &`), this process is npm's grandchild, and a signal to
 * `$!` (npm) does not reach it. When any process of that launcher chain goes (or is re-parented
 * because its own parent went) we stop as if signalled. Returns a function that stops watching.
 */
export function stopWhenLauncherExits(onGone: () => void, everyMs = 1000): () => void {
  const launchedByNpm = Boolean(process.env.npm_execpath || process.env.npm_command);
  if (!launchedByNpm) return () => undefined;
  const chain = [process.pid, ...launcherChain()];
  const parents = chain.map((pid) => parentOf(pid) ?? process.ppid);
  const timer = setInterval(() => {
    if (chain.some((pid, i) => parentOf(pid) !== parents[i])) {
      clearInterval(timer);
      onGone();
    }
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
