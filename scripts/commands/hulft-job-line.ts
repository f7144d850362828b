import { loadConfig } from '../../jobs/config.ts';
import { hulftJobLines, HULFT_CENTRE_DEFAULTS, JOB_LINE_MAX_BYTES } from '../../protocols/hulft/config.ts';
import { EXIT_USAGE, parseCommandArgs, printJson, UsageError, type Command } from '../cli-kit.ts';

const usage = 'tsunagi hulft-job-line [--kind received|failed|sent] [--check LINE] [--json] [--config FILE]';
const KINDS = ['received', 'failed', 'sent'] as const;
const NEEDS: Record<(typeof KINDS)[number], string[]> = {
  received: ['hulft-received', '$FILEID', '$FILENM', '$HOST', '$STATUS', '$DETAIL', '--msg0=$MSG0'],
  failed: ['hulft-received', '$FILEID', '$FILENM', '$HOST', '$STATUS', '$DETAIL', '--msg0=$MSG0', '--failed'],
  sent: ['hulft-sent', '$FILEID', '$FILENM', '$HOST', '$STATUS', '$DETAIL', '--msg0=$MSG0'],
};

/** Why a ジョブ起動情報 line would not work, or null (≤200 bytes [D14], the variables it needs). */
export function jobLineProblem(line: string, kind: (typeof KINDS)[number]): string | null {
  const n = Buffer.byteLength(line);
  if (n > JOB_LINE_MAX_BYTES) return `${n} bytes; HULFT takes at most ${JOB_LINE_MAX_BYTES}`;
  const missing = NEEDS[kind].filter((w) => !line.includes(w));
  return missing.length ? `missing ${missing.join(', ')}` : null;
}

export const command: Command = {
  summary: 'print (and check) the ジョブ起動情報 lines HULFT runs: post-receive, its failure variant, post-send',
  usage,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { config: { type: 'string' }, kind: { type: 'string' }, check: { type: 'string' }, json: { type: 'boolean' } }, usage);
    const kind = values.kind as (typeof KINDS)[number] | undefined;
    if (kind !== undefined && !KINDS.includes(kind)) throw new UsageError(`--kind: one of ${KINDS.join(', ')}\nusage: ${usage}`);
    if (values.check !== undefined) {
      const problem = jobLineProblem(values.check, kind ?? (values.check.includes('hulft-sent') ? 'sent' : values.check.includes('--failed') ? 'failed' : 'received'));
      process.stdout.write(problem ? `bad job line: ${problem}\n` : `ok (${Buffer.byteLength(values.check)} bytes)\n`);
      return problem ? EXIT_USAGE : 0;
    }
    const config = loadConfig(values.config);
    const lines = hulftJobLines((config.hulft ?? HULFT_CENTRE_DEFAULTS).jobCommand, config.file);
    let bad = 0;
    for (const k of kind ? [kind] : KINDS) {
      const problem = jobLineProblem(lines[k], k);
      if (problem) bad++;
      if (values.json) printJson({ kind: k, line: lines[k], bytes: Buffer.byteLength(lines[k]), problem });
      else if (kind) process.stdout.write(`${lines[k]}\n`);
      else process.stdout.write(`# ${k === 'received' ? '集信後ジョブ (success)' : k === 'failed' ? '集信異常時ジョブ (failure)' : '配信後ジョブ (JOBID and EJOBID)'}\n${lines[k]}\n`);
      if (problem) process.stderr.write(`tsunagi hulft-job-line: the ${k} line is too long or incomplete: ${problem}\n`);
    }
    return bad ? EXIT_USAGE : 0;
  },
};
