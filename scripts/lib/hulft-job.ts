// Shared by the HULFT job commands (hulft-received, hulft-sent): flags that HULFT fills from its
// job variables, each also readable from the environment variable of the same HULFT name, and
// the job exit statuses (0 ok, 2 usage, 4 nothing to land, 5 spool/disk/ledger: HULFT retries).
import { openCentre, type Centre } from '../../jobs/centre.ts';
import { ConfigError } from '../../jobs/config.ts';
import { createLogger, redact } from '../../jobs/log.ts';
import { HulftJobError } from '../../protocols/hulft/receive.ts';
import type { HulftPartner } from '../../protocols/hulft/client.ts';
import { UsageError } from '../cli-kit.ts';

/** flag -> the HULFT job variable (and environment variable) it comes from. */
export const JOB_FLAGS = {
  'file-id': 'FILEID',
  file: 'FILENM',
  host: 'HOST',
  status: 'STATUS',
  detail: 'DETAIL',
  count: 'COUNT',
  msg0: 'MSG0',
  msg1: 'MSG1',
  msg2: 'MSG2',
  msg3: 'MSG3',
  msg4: 'MSG4',
  msg5: 'MSG5',
  msgl0: 'MSGL0',
  msgl1: 'MSGL1',
  sdate: 'SDATE',
  edate: 'EDATE',
  stime: 'STIME',
} as const;
export type JobFlag = keyof typeof JOB_FLAGS;

export interface ParsedJobArgs {
  values: Partial<Record<JobFlag, string>>;
  config?: string;
  failed: boolean;
  json: boolean;
}

/**
 * `--flag value` or `--flag=value`. HULFT substitutes an empty variable with nothing, so a flag
 * followed straight by another flag has an empty value (hence `--msg0=$MSG0` in the job lines).
 */
export function parseJobArgs(argv: string[], usage: string, booleans: string[] = ['failed', 'json']): ParsedJobArgs {
  const values: Partial<Record<JobFlag, string>> = {};
  const flags = new Set<string>();
  let config: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new UsageError(`unexpected argument '${arg}'\nusage: ${usage}`);
    const name = m[1]!;
    if (booleans.includes(name)) {
      if (m[2] !== undefined) throw new UsageError(`--${name} takes no value\nusage: ${usage}`);
      flags.add(name);
      continue;
    }
    if (name !== 'config' && !Object.hasOwn(JOB_FLAGS, name)) throw new UsageError(`unknown option --${name}\nusage: ${usage}`);
    let value = m[2];
    if (value === undefined) {
      const next = argv[i + 1];
      value = next === undefined || next.startsWith('--') ? '' : (i++, next);
    }
    if (name === 'config') config = value;
    else values[name as JobFlag] = value;
  }
  for (const [flag, env] of Object.entries(JOB_FLAGS) as [JobFlag, string][]) {
    if (values[flag] === undefined && process.env[env] !== undefined) values[flag] = process.env[env];
  }
  return { values, config, failed: flags.has('failed'), json: flags.has('json') };
}

/** The job variables kept as they came, beside the ones the ledger has columns for. */
export function extraVars(values: ParsedJobArgs['values']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['sdate', 'edate', 'stime', 'msg1', 'msg2', 'msg3', 'msg4', 'msg5', 'msgl0', 'msgl1'] as const) if (values[k]) out[JOB_FLAGS[k]] = values[k]!;
  return out;
}

export function hulftPartners(centre: Centre): HulftPartner[] {
  return centre.config.partners.filter((p) => p.hulft).map((p) => ({ id: p.id, hulft: p.hulft!, formats: p.formats }));
}

/** Opens the centre and runs the job body; maps every failure onto the job exit statuses. */
export async function runJob(command: string, config: string | undefined, body: (centre: Centre) => Promise<number>): Promise<number> {
  const log = createLogger({ level: process.env.TSUNAGI_LOG_LEVEL ?? 'info', destination: process.stderr });
  let centre: Centre | undefined;
  try {
    centre = await openCentre(config, { log });
    return await body(centre);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) throw err;
    const code = err instanceof HulftJobError ? err.exitCode : 5;
    process.stderr.write(`tsunagi ${command}: ${redact((err as Error).message)}\n`);
    return code;
  } finally {
    await centre?.close().catch(() => undefined);
  }
}
