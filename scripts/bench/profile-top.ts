// Prints the top entries of V8 CPU profiles (.cpuprofile files, one per thread, as written by
// `node --cpu-prof` or the cycle benchmark's --profile): self time per function, all threads summed.
//
//   npx tsx scripts/bench/profile-top.ts DIR_OR_FILES... [--top 30]
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

export function profileFiles(paths: string[]): string[] {
  return paths.flatMap((p) => (statSync(p).isDirectory() ? readdirSync(p).filter((n) => n.endsWith('.cpuprofile')).map((n) => path.join(p, n)) : [p]));
}

/** Self milliseconds per "function file:line", summed over the given profiles. */
export function selfTimes(files: string[]): Map<string, number> {
  const totals = new Map<string, number>();
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    for (let i = 0; i < profile.samples.length; i++) {
      const node = byId.get(profile.samples[i]!)!;
      const f = node.callFrame;
      const where = f.url ? `${f.url.replace(/^file:\/\/.*?\/(node_modules|formats|spool|jobs|protocols|scripts)\//, '$1/')}:${f.lineNumber + 1}` : '';
      const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
      totals.set(key, (totals.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
    }
  }
  return totals;
}

export function printTop(files: string[], top = 30): void {
  const totals = selfTimes(files);
  const all = [...totals.values()].reduce((a, b) => a + b, 0);
  console.log(`CPU profile: ${files.length} thread(s), ${(all / 1000).toFixed(1)} s sampled; top ${top} by self time:`);
  for (const [key, ms] of [...totals].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(ms / 1000).toFixed(2).padStart(8)} s ${((100 * ms) / all).toFixed(1).padStart(5)}%  ${key}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' } } });
  printTop(profileFiles(positionals), Number(values.top));
}
