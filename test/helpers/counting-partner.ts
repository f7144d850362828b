// A partner stand-in that takes every file the moment it appears, the way a card centre's polling
// job does: a separate process watches a folder (inotify, plus a 20 ms poll) and moves each
// complete file (not under a temporary name) into its own `taken` folder under a fresh name.
// A push that was delivered twice shows here as two taken copies, even with the same name.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Centre } from '../../jobs/centre.ts';
import { isTemporaryName } from '../../spool/tree.ts';

const POLLER = String.raw`
const fs = require('node:fs');
const path = require('node:path');
const [dir, taken] = process.argv.slice(1);
const temporary = (n) => n.startsWith('.') || n.endsWith('.part') || n.endsWith('.tmp');
let seq = 0, busy = false, again = false;
function scan() {
  if (busy) { again = true; return; }
  busy = true;
  try {
    for (const name of fs.readdirSync(dir)) {
      if (temporary(name)) continue;
      const from = path.join(dir, name);
      try {
        if (!fs.statSync(from).isFile()) continue;
        fs.renameSync(from, path.join(taken, String(++seq).padStart(6, '0') + '-' + process.pid + '-' + name));
      } catch {}
    }
  } catch {}
  busy = false;
  if (again) { again = false; setImmediate(scan); }
}
fs.watch(dir, () => scan());
setInterval(scan, 20);
process.on('SIGTERM', () => { scan(); process.exit(0); });
process.stdout.write('ready\n');
scan();
`;

export interface TakenFile {
  /** the name it appeared under */
  name: string;
  sha256: string;
  bytes: Buffer;
}

export interface CountingPartner {
  dir: string;
  taken: string;
  /** Every file taken so far, in the order taken. */
  files(): Promise<TakenFile[]>;
  /** name -> how many times a file of that name was taken */
  counts(): Promise<Map<string, number>>;
  /** Files still in the folder (temporaries included): nothing should be left once settled. */
  leftInFolder(): Promise<string[]>;
  stop(): Promise<void>;
}

/** Starts the poller on `dir` (created if missing); taken files go to `taken` (default dir + '.taken'). */
export async function startCountingPartner(dir: string, taken = `${dir.replace(/\/$/, '')}.taken`): Promise<CountingPartner> {
  await mkdir(dir, { recursive: true });
  await mkdir(taken, { recursive: true });
  let child: ChildProcess = spawn(process.execPath, ['-e', POLLER, dir, taken], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`counting partner exited (${code})`)));
  });
  const files = async (): Promise<TakenFile[]> => {
    const out: TakenFile[] = [];
    for (const entry of (await readdir(taken)).sort()) {
      const bytes = await readFile(path.join(taken, entry));
      out.push({ name: entry.replace(/^\d+-\d+-/, ''), bytes, sha256: createHash('sha256').update(bytes).digest('hex') });
    }
    return out;
  };
  return {
    dir,
    taken,
    files,
    async counts() {
      const m = new Map<string, number>();
      for (const f of await files()) m.set(f.name, (m.get(f.name) ?? 0) + 1);
      return m;
    },
    leftInFolder: async () => (await readdir(dir)).sort(),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/**
 * Exactly once as the partners saw it: each partner took each file the ledger sent it exactly once
 * (by sha256), nothing more, and no temporary of ours is left in its folder. `namesDifferFor`: the
 * partners whose protocol names files its own way (全銀), whose names are not compared.
 */
export async function assertEachTakenOnce(centre: Centre, partners: Map<string, CountingPartner>, namesDifferFor: string[] = []): Promise<void> {
  for (const [partnerId, partner] of partners) {
    const rows = await centre.files.list({ partnerId, direction: 'out' });
    for (const r of rows) assert.equal(r.state, 'sent', `${r.id} is ${r.state}: ${r.reason}`);
    const taken = await partner.files();
    const bySha = new Map<string, number>();
    for (const t of taken) bySha.set(t.sha256, (bySha.get(t.sha256) ?? 0) + 1);
    for (const r of rows) assert.equal(bySha.get(r.sha256!), 1, `${partnerId} got ${r.name} (${r.file_type}) ${bySha.get(r.sha256!) ?? 0} times`);
    assert.equal(taken.length, rows.length, `${partnerId}: took ${taken.length} files, the ledger sent ${rows.length}`);
    if (!namesDifferFor.includes(partnerId)) assert.deepEqual(taken.map((t) => t.name).sort(), rows.map((r) => r.name).sort(), `${partnerId}: names`);
    assert.deepEqual((await partner.leftInFolder()).filter(isTemporaryName), [], `${partnerId}: temporaries left at the partner`);
  }
}
