// Prints the top entries of V8 CPU profiles (.cpuprofile files, one per thread, as written by
// `node --cpu-prof` or the cycle benchmark's --profile): self time per function and per source
// file, all threads summed. A directory's `timed.json` (the cycle benchmark writes one: the timed
// windows, as [from, to] pairs of process.hrtime microseconds, the clock V8's profiles use) limits
// the count to the samples taken inside them, so that start-up and file generation do not drown
// the cycle. tsx runs minified code: a function is named by its column on line 1.
//
//   npx tsx scripts/bench/profile-top.ts DIR_OR_FILES... [--top 30]
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }; hitCount?: number }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number }
type Windows = [number, number][];

/** The timed windows written beside the profiles, if any. */
function windowsFor(file: string): Windows | undefined {
  try {
    return JSON.parse(readFileSync(path.join(path.dirname(file), 'timed.json'), 'utf8')) as Windows;
  } catch {
    return undefined;
  }
}

export function profileFiles(paths: string[]): string[] {
  return paths.flatMap((p) => (statSync(p).isDirectory() ? readdirSync(p).filter((n) => n.endsWith('.cpuprofile')).map((n) => path.join(p, n)) : [p]));
}

const shortUrl = (url: string) => url.replace(/^file:\/\/.*?\/(node_modules|formats|spool|jobs|protocols|scripts|test)\//, '$1/');

/** Self milliseconds per "function file:line[:column]" and per source file, summed over the given profiles (inside their timed windows, if any). */
export function selfTimes(files: string[]): { byFunction: Map<string, number>; byFile: Map<string, number> } {
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    const windows = windowsFor(file);
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    let t = profile.startTime;
    for (let i = 0; i < profile.samples.length; i++) {
      t += profile.timeDeltas[i] ?? 0;
      if (windows && !windows.some(([from, to]) => t >= from && t <= to)) continue;
      const f = byId.get(profile.samples[i]!)!.callFrame;
      const ms = (profile.timeDeltas[i] ?? 0) / 1000;
      const where = f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}${f.lineNumber === 0 ? `:${f.columnNumber + 1}` : ''}` : '';
      const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
      byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
      const source = f.url ? shortUrl(f.url).replace(/^node_modules\/((@[^/]+\/)?[^/]+).*/, '$1') : f.functionName.startsWith('(') ? f.functionName : '(native)';
      byFile.set(source, (byFile.get(source) ?? 0) + ms);
    }
  }
  return { byFunction, byFile };
}

export function printTop(files: string[], top = 30): void {
  const { byFunction, byFile } = selfTimes(files);
  const all = [...byFunction.values()].reduce((a, b) => a + b, 0);
  const timed = files.some((f) => windowsFor(f)) ? ' inside the timed windows' : '';
  const print = (totals: Map<string, number>, n: number) => {
    for (const [key, ms] of [...totals].sort((a, b) => b[1] - a[1]).slice(0, n)) {
      console.log(`${(ms / 1000).toFixed(2).padStart(8)} s ${((100 * ms) / all).toFixed(1).padStart(5)}%  ${key}`);
    }
  };
  console.log(`CPU profile: ${files.length} thread(s), ${(all / 1000).toFixed(1)} s sampled${timed}; top ${top} functions by self time:`);
  print(byFunction, top);
  console.log(`by source file or package:`);
  print(byFile, Math.ceil(top / 2));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' } } });
  printTop(profileFiles(positionals), Number(values.top));
}
