// A world for the HULFT stand-in (test/fakes/hulft: NOT HULFT): our node and partner nodes under
// FAKE_HULFT_ROOT, our node's definitions mirrored from a tsunagi config, a `tsunagi` on PATH for
// the job lines, and readers for the stand-in's logs.
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TsunagiConfig } from '../../jobs/config.ts';
import { hulftJobLines } from '../../protocols/hulft/config.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FAKE_HULFT_BIN = path.join(ROOT, 'test', 'fakes', 'hulft', 'bin');
export const TSUNAGI_JS = path.join(ROOT, 'bin', 'tsunagi.js');
export const OUR_NODE = 'TSUNAGI';

export interface NodeDefs {
  up?: boolean;
  ports?: { rcv: number; obs: number };
  daemons?: { snd?: boolean; rcv?: boolean; obs?: boolean };
  dynparam?: boolean;
  jobwtimeout?: number;
  send?: Record<string, unknown>[];
  receive?: Record<string, unknown>[];
  groups?: Record<string, string[]>;
  jobs?: Record<string, string[]>;
}

export interface HulftWorld {
  root: string;
  etcDir: string;
  /** YAML for the centre's hulft section. */
  centreYaml(extra?: string): string;
  writeDefs(host: string, defs: NodeDefs): Promise<void>;
  readDefs(host: string): Promise<NodeDefs>;
  log(host: string, kind: 'snd' | 'rcv' | 'job' | 'cmd'): Promise<Record<string, unknown>[]>;
  setFaults(faults: Record<string, unknown>): Promise<void>;
  /** Points this process (and the HULFT commands it runs) at the world; returns the undo. */
  enter(): () => void;
}

export async function makeHulftWorld(dir: string): Promise<HulftWorld> {
  const root = path.join(dir, 'fake-hulft');
  const etcDir = path.join(root, 'etc');
  const binDir = path.join(dir, 'bin');
  await mkdir(etcDir, { recursive: true });
  await mkdir(binDir, { recursive: true });
  // Job lines say `tsunagi ...` as an operator's would; this one runs the working tree's CLI.
  await writeFile(path.join(binDir, 'tsunagi'), `#!/bin/sh\nexec "${process.execPath}" "${TSUNAGI_JS}" "$@"\n`);
  await chmod(path.join(binDir, 'tsunagi'), 0o755);
  const nodeFile = (host: string, name: string) => path.join(root, 'nodes', host, name);
  return {
    root,
    etcDir,
    centreYaml: (extra = '') => `hulft: { binDir: ${FAKE_HULFT_BIN}, etcDir: ${etcDir}, dynparam: true, syncTimeoutSeconds: 3, aliveCheckSeconds: 10${extra} }`,
    async writeDefs(host, defs) {
      await mkdir(path.join(root, 'nodes', host), { recursive: true });
      await writeFile(nodeFile(host, 'defs.json'), JSON.stringify({ up: true, ports: { rcv: 30000, obs: 31000 }, dynparam: true, jobwtimeout: 120, ...defs }, null, 1));
    },
    async readDefs(host) {
      return JSON.parse(await readFile(nodeFile(host, 'defs.json'), 'utf8')) as NodeDefs;
    },
    async log(host, kind) {
      const text = await readFile(nodeFile(host, `${kind}.jsonl`), 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    async setFaults(faults) {
      await writeFile(path.join(root, 'faults.json'), JSON.stringify(faults));
    },
    enter() {
      const saved = { root: process.env.FAKE_HULFT_ROOT, self: process.env.FAKE_HULFT_SELF, path: process.env.PATH };
      process.env.FAKE_HULFT_ROOT = root;
      process.env.FAKE_HULFT_SELF = OUR_NODE;
      process.env.PATH = `${binDir}:${process.env.PATH}`;
      return () => {
        for (const [k, v] of [['FAKE_HULFT_ROOT', saved.root], ['FAKE_HULFT_SELF', saved.self], ['PATH', saved.path]] as const) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
      };
    },
  };
}

/**
 * Our node's definitions as the operator registers them from tsunagi's config (hulft-defs):
 * 配信/集信管理情報 of every HULFT partner, its job lines, and a group per GRPID.
 */
export function ourDefs(config: TsunagiConfig, options: { senderJobs?: boolean; receiverJobs?: boolean } = {}): NodeDefs {
  const lines = hulftJobLines(config.hulft?.jobCommand ?? 'tsunagi', config.file);
  const send: Record<string, unknown>[] = [];
  const receive: Record<string, unknown>[] = [];
  const jobs: Record<string, string[]> = {};
  const groups: Record<string, string[]> = {};
  for (const p of config.partners) {
    if (!p.hulft) continue;
    for (const d of p.hulft.send) {
      send.push({ ...d, jobs: options.senderJobs ? d.jobs : {} });
      if (options.senderJobs) for (const j of [d.jobs.success, d.jobs.failure]) if (j) jobs[j] = [lines.sent];
      if (d.group) groups[d.group] = [p.hulft.host];
    }
    for (const d of p.hulft.receive) {
      receive.push({ ...d, jobs: options.receiverJobs === false ? {} : d.jobs });
      if (d.jobs.success) jobs[d.jobs.success] = [lines.received];
      if (d.jobs.failure) jobs[d.jobs.failure] = [lines.failed];
    }
  }
  return { dynparam: config.hulft?.dynparam ?? false, send, receive, jobs, groups };
}
