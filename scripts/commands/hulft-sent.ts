import { settleHulftSend } from '../../protocols/hulft/sent.ts';
import { hulftSendDir } from '../../protocols/hulft/index.ts';
import { printJson, UsageError, type Command } from '../cli-kit.ts';
import { extraVars, hulftPartners, parseJobArgs, runJob } from '../lib/hulft-job.ts';

const usage = 'tsunagi hulft-sent --file-id $FILEID --host $HOST --file $FILENM --status $STATUS --detail $DETAIL --msg0=$MSG0 [--json] [--config FILE]';

export const command: Command = {
  summary: "HULFT's 配信後ジョブ: record how a send ended and settle a push whose outcome was unknown",
  usage,
  async run(argv) {
    const { values, config, json } = parseJobArgs(argv, usage, ['json']);
    if (!values['file-id'] || !values.host) throw new UsageError(`--file-id and --host are required\nusage: ${usage}`);
    if (values.status === undefined || values.status === '') throw new UsageError(`--status is required\nusage: ${usage}`);
    return runJob('hulft-sent', config, async (centre) => {
      const result = await settleHulftSend(
        { ledger: centre.ledger, files: centre.files, spool: centre.spool, log: centre.log, partners: hulftPartners(centre), sendDir: hulftSendDir(centre.config.hulft ?? {}, centre.spool.root) },
        { fileId: values['file-id']!, host: values.host!, file: values.file || undefined, status: values.status!, detail: values.detail || undefined, count: values.count, msg0: values.msg0 || undefined, vars: extraVars(values) },
      );
      if (json) printJson(result);
      else process.stdout.write(`${result.outcome}${result.fileId ? ` ${result.fileId}` : ''}\n`);
      return 0;
    });
  },
};
