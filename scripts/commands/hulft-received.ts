import { landHulftReceipt } from '../../protocols/hulft/receive.ts';
import { partnerUploadLimits } from '../../jobs/security-config.ts';
import { printJson, UsageError, type Command } from '../cli-kit.ts';
import { extraVars, hulftPartners, parseJobArgs, runJob } from '../lib/hulft-job.ts';

const usage =
  'tsunagi hulft-received --file-id $FILEID --file $FILENM --host $HOST --status $STATUS --detail $DETAIL --msg0=$MSG0 [--count $COUNT] [--failed] [--json] [--config FILE]';

export const command: Command = {
  summary: "HULFT's 集信後ジョブ: land a file HULFT received, exactly once (--failed: record a failed receive)",
  usage,
  async run(argv) {
    const { values, config, failed, json } = parseJobArgs(argv, usage);
    if (!values['file-id'] || !values.host) throw new UsageError(`--file-id and --host are required\nusage: ${usage}`);
    if (!failed && !values.file) throw new UsageError(`--file is required\nusage: ${usage}`);
    return runJob('hulft-received', config, async (centre) => {
      const result = await landHulftReceipt(
        {
          ledger: centre.ledger,
          spool: centre.spool,
          log: centre.log,
          partners: hulftPartners(centre),
          limitsFor: (partnerId) => partnerUploadLimits(centre.config, partnerId),
        },
        { fileId: values['file-id']!, file: values.file ?? '', host: values.host!, status: values.status || undefined, detail: values.detail || undefined, count: values.count, msg0: values.msg0, failed, vars: extraVars(values) },
      );
      if (json) printJson(result);
      else process.stdout.write(`${result.outcome}${result.fileId ? ` ${result.fileId}` : ''} (${result.partnerId})\n`);
      return 0;
    });
  },
};
