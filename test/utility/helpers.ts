// Helpers of the utility tests: files built from field values, files read back as field values,
// and a centre with one utility and two card companies on local delivery.
import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { luhnCheckDigit, readFieldRecords, writeFieldRecords } from '../../formats/index.ts';
import { makeTestCentre, type TestCentre } from '../helpers/centre.ts';
import { Writable } from 'node:stream';
import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { runCycle } from '../../jobs/cycle.ts';
import { createLogger } from '../../jobs/log.ts';
import { TSUNAGI_BIN } from '../helpers/crash.ts';

const run = promisify(execFile);

export const UTILITY = 'u-denki';
export const UTILITY_CODE = '3000000001';
export const UTILITY_MERCHANTS = { '001': '300000000000001', '002': '300000000000002' };

/** A Luhn-valid test card number with a recognisable body. */
export function card(prefix: string, n: number): string {
  const body = `${prefix}${String(n).padStart(15 - prefix.length, '0')}`;
  return body + luhnCheckDigit(body);
}

export async function writeRecordFile(out: string, family: string, fileType: string, header: { sender: string; receiver: string; fileSeq: number; date: string }, records: Record<string, string>[]): Promise<void> {
  writeFieldRecords(out, family, { fileType, senderCode: header.sender, receiverCode: header.receiver, createdDate: header.date, createdTime: '120000', fileSeq: String(header.fileSeq) }, records);
}

export const readRecordFile = readFieldRecords;

/** Files of a remote folder with a given file type in their name (T22_..., T24_...). */
export async function remoteFiles(centre: TestCentre, partner: string, fileType: string): Promise<string[]> {
  return (await readdir(centre.remote(partner))).filter((n) => n.startsWith(`T${fileType}_`)).sort().map((n) => path.join(centre.remote(partner), n));
}

export async function makeUtilityCentre(ledger?: string, queue?: string): Promise<{ centre: TestCentre; env: Record<string, string> }> {
  const kek = randomBytes(32).toString('hex');
  const centre = await makeTestCentre({
    merchants: 1,
    companies: 2,
    ledger,
    queue,
    extraPartnerYaml: [
      `  - { id: ${UTILITY}, name: DENKI POWER, role: utility, code: "${UTILITY_CODE}", send: ["21", "23"], receive: ["22", "24", "91"], delivery: { protocol: local, path: ./remote/${UTILITY} },`,
      `      utility: { merchantNos: { "001": "${UTILITY_MERCHANTS['001']}", "002": "${UTILITY_MERCHANTS['002']}" }, validity: { schedule: "0 1 1 * *" } } }`,
      'vault: { kek: { env: TSUNAGI_TEST_KEK } }',
    ].join('\n'),
  });
  const { mkdir } = await import('node:fs/promises');
  // one process per cycle: no worker threads to boot (each would load TypeScript again)
  const text = await readFile(centre.configFile, 'utf8');
  await writeFile(centre.configFile, text.replace('workers: { concurrency: 2 }', 'workers: { concurrency: 2, threads: 0 }'));
  await mkdir(path.join(centre.dir, 'spool', 'partners', UTILITY, 'inbound'), { recursive: true });
  await mkdir(centre.remote(UTILITY), { recursive: true });
  return { centre, env: { TSUNAGI_TEST_KEK: kek } };
}

/** One cycle in this process (what `tsunagi cycle` runs), with the log captured; returns the log. */
export async function cycleInProcess(centre: TestCentre, env: Record<string, string>, date: string, now: string): Promise<string> {
  const saved = { ...process.env };
  Object.assign(process.env, env, { TSUNAGI_NOW: now });
  let text = '';
  const log = createLogger({ level: 'debug', destination: new Writable({ write: (c, _e, done) => { text += String(c); done(); } }) });
  const c = await openCentre(centre.configFile, { log });
  const engine = await startEngine(c, { lockDurationMs: 5000, stalledIntervalMs: 2000 });
  try {
    await runCycle(engine, { date });
  } finally {
    await engine.stop();
    await c.close();
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
  return text;
}

/** `tsunagi cycle --date D` as a child process; returns its whole output (logs included). */
export async function cycle(centre: TestCentre, env: Record<string, string>, date: string, now: string): Promise<string> {
  try {
    const { stdout, stderr } = await run(process.execPath, [TSUNAGI_BIN, 'cycle', '--config', centre.configFile, '--date', date], {
      env: { ...process.env, ...env, TSUNAGI_NOW: now, TSUNAGI_LOG_LEVEL: 'debug' }, maxBuffer: 64 << 20,
    });
    return stdout + stderr;
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (e.code === 3) return (e.stdout ?? '') + (e.stderr ?? ''); // finished, something rejected
    throw new Error(`tsunagi cycle failed (${e.code}):\n${e.stdout}\n${e.stderr}`);
  }
}

export async function readText(file: string): Promise<string> {
  return (await readFile(file)).toString('latin1');
}

export { writeFile };
