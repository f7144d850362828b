// Helpers for the crash tests: `tsunagi worker` child processes, a seeded random source, the
// expected record set of a cycle, and the exactly-once check of its end state (ledger and the
// destination folders).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { openSource, streamCanonical, makeRecordView } from '../../formats/index.ts';
import { isTemporaryName } from '../../spool/tree.ts';
import type { Centre } from '../../jobs/centre.ts';
import { companyCode, type TestCentre } from './centre.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TSUNAGI_BIN = path.join(ROOT, 'bin', 'tsunagi.js');

/** A deterministic random source (the generator's mulberry32), so that a failing run can be replayed by its seed. */
export { seededRandom } from '../../formats/index.ts';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export interface WorkerProcess {
  child: ChildProcess;
  /** Resolves when the process logged its ready text ('worker ready', 'tsunagi serving'). */
  ready: Promise<void>;
  /** The exit code (null when a signal ended it). */
  exited: Promise<number | null>;
  output(): string;
  alive(): boolean;
  /** SIGTERM, then SIGKILL after 10 s. */
  stop(): Promise<void>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** node's own options, such as --max-old-space-size=256 */
  nodeArgs?: string[];
}

/** Starts `node bin/tsunagi.js worker --config FILE` with short lock and stall timings. */
export function startWorker(configFile: string, env: Record<string, string> = {}): WorkerProcess {
  return startTsunagi(['worker', '--config', configFile], '"worker ready"', env);
}

/** Starts `tsunagi serve` (schedules, workers, the start-up sweep), checking its schedulers every second. */
export function startServe(configFile: string, env: Record<string, string> = {}, options: Omit<StartOptions, 'env'> = {}): WorkerProcess {
  return startTsunagi(['serve', '--config', configFile], '"tsunagi serving"', { TSUNAGI_SCHEDULE_CHECK_MS: '1000', ...env }, options);
}

/** Any tsunagi command as a child process; `ready` resolves when its output shows `readyText`. */
export function startTsunagi(args: string[], readyText: string, env: Record<string, string> = {}, options: Omit<StartOptions, 'env'> = {}): WorkerProcess {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), TSUNAGI_BIN, ...args], {
    env: { ...process.env, TSUNAGI_LOG_LEVEL: 'info', TSUNAGI_LOCK_MS: '1500', TSUNAGI_STALLED_MS: '500', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let resolveReady!: () => void;
  let rejectReady!: (err: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 400_000) out = out.slice(-200_000);
    if (readyText && out.includes(readyText)) resolveReady();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then((code) => rejectReady(new Error(`${args[0]} exited (${code ?? child.signalCode}) before it was ready:\n${out.slice(-3000)}`)));
  ready.catch(() => undefined);
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    ready,
    exited,
    output: () => out,
    alive,
    async stop() {
      if (alive()) child.kill('SIGTERM');
      const timer = setTimeout(() => alive() && child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface RedisServer {
  port: number;
  url: string;
  child: ChildProcess;
  exited: Promise<void>;
}

/** A redis-server of the test's own (never the machine's shared one), empty, on `port`. */
export async function startRedis(port: number): Promise<RedisServer> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--daemonize', 'no'], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitUntil(`redis-server on ${port}`, async () => {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined); // refused while the server starts: connect() rejects as well
    try {
      await probe.connect();
      return (await probe.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      probe.disconnect();
    }
  }, 10_000, 50);
  return { port, url: `redis://127.0.0.1:${port}/0`, child, exited };
}

export async function stopRedis(r: RedisServer | undefined): Promise<void> {
  if (!r) return;
  if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await r.exited;
}

export async function killWorker(w: WorkerProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill(signal);
  await w.exited;
}

export const recordKey = (f: Readonly<Record<string, string>>) => `${f.merchantNo!.trim()}|${f.terminalId!.trim()}|${f.slipNo}|${f.useDate}`;

/** Data-record keys of a fixed-width file (any supported encoding and framing). */
export async function fileKeys(file: string): Promise<string[]> {
  const src = await openSource(file, {});
  const view = makeRecordView(src.family.data);
  const keys: string[] = [];
  await streamCanonical(src, (rec, off, _no, type) => {
    if (type !== '2') return;
    view.point(rec, off);
    keys.push(recordKey(view.fields));
  });
  return keys;
}

/** What the merchants' 31 files in the inbound folders ask for: company id -> sorted record keys. */
export async function expectedByCompany(centre: TestCentre): Promise<Map<string, string[]>> {
  const idByCode = new Map(centre.companyIds.map((id, i) => [companyCode(i), id]));
  const out = new Map<string, string[]>(centre.companyIds.map((id) => [id, []]));
  for (const m of centre.merchantIds) {
    const dir = path.join(centre.dir, 'spool', 'partners', m, 'inbound');
    for (const name of await readdir(dir)) {
      const src = await openSource(path.join(dir, name), {});
      const view = makeRecordView(src.family.data);
      await streamCanonical(src, (rec, off, _no, type) => {
        if (type !== '2') return;
        view.point(rec, off);
        out.get(idByCode.get(view.fields.cardCompanyCode!)!)!.push(recordKey(view.fields));
      });
    }
  }
  for (const keys of out.values()) keys.sort();
  return out;
}

export interface ExactlyOnceReport {
  outbound: number;
  interruptedPushes: number;
}

/**
 * The end state of a cycle is exactly once: every inbound file routed; every outbound file sent,
 * with exactly one successful delivery; in each company's folder exactly the ledger's files, with
 * the ledger's bytes, no temporaries, and together exactly the expected records, none twice.
 */
export async function assertExactlyOnce(centre: Centre, def: TestCentre, expected: Map<string, string[]>): Promise<ExactlyOnceReport> {
  const db = centre.ledger.db;
  const inbound = await centre.files.list({ direction: 'in' });
  assert.equal(inbound.length, def.merchantIds.length, 'one inbound file per merchant');
  for (const f of inbound) assert.equal(f.state, 'routed', `inbound ${f.id} (${f.partner_id}) is ${f.state}: ${f.reason}`);
  const outbound = await centre.files.list({ direction: 'out' });
  for (const f of outbound) assert.equal(f.state, 'sent', `outbound ${f.id} is ${f.state}: ${f.reason}`);
  const okRows = (await db('deliveries').where({ outcome: 'ok' }).select('file_id')) as { file_id: string }[];
  const okCount = new Map<string, number>();
  for (const r of okRows) okCount.set(r.file_id, (okCount.get(r.file_id) ?? 0) + 1);
  for (const f of outbound) assert.equal(okCount.get(f.id), 1, `${f.id}: ${okCount.get(f.id) ?? 0} successful deliveries`);
  const interrupted = await db('deliveries').whereNull('outcome').count({ n: '*' });

  for (const company of def.companyIds) {
    const rows = outbound.filter((f) => f.partner_id === company);
    assert.equal(rows.length, def.merchantIds.length, `${company}: one outbound file per merchant in the ledger`);
    const dir = def.remote(company);
    const names = (await readdir(dir)).sort();
    assert.deepEqual(names.filter(isTemporaryName), [], `${company}: temporaries left at the destination`);
    assert.deepEqual(names, rows.map((r) => r.name).sort(), `${company}: the destination holds exactly the ledger's files`);
    const got: string[] = [];
    for (const row of rows) {
      const bytes = await readFile(path.join(dir, row.name));
      assert.equal(createHash('sha256').update(bytes).digest('hex'), row.sha256, `${company}/${row.name}: bytes differ from the ledger`);
      got.push(...(await fileKeys(path.join(dir, row.name))));
    }
    got.sort();
    const dupes = got.filter((k, i) => i > 0 && got[i - 1] === k);
    assert.deepEqual(dupes, [], `${company}: records delivered twice`);
    assert.deepEqual(got, expected.get(company), `${company}: delivered records differ from the expected set`);
  }
  return { outbound: outbound.length, interruptedPushes: Number((interrupted[0] as { n: number }).n) };
}

/** Whether the ledger says the cycle is done: all inbound routed, all outbound sent. */
export async function cycleDone(centre: Centre, merchants: number, companies: number): Promise<boolean> {
  const rows = (await centre.ledger.db('files').select('direction', 'state').count({ n: '*' }).groupBy('direction', 'state')) as { direction: string; state: string; n: number }[];
  const n = (d: string, s: string) => Number(rows.find((r) => r.direction === d && r.state === s)?.n ?? 0);
  return n('in', 'routed') === merchants && n('out', 'sent') === merchants * companies;
}
