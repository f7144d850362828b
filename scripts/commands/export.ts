import { openCentre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { exportFile } from '../../jobs/at-rest.ts';
import { parseCommandArgs, UsageError, type Command } from '../cli-kit.ts';

const usage = 'tsunagi export FILE_ID --out PATH --reason TEXT [--config FILE]';

export const command: Command = {
  summary: "one file's bytes in the clear (decrypted from the spool), for an investigation: audited with the reason",
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { config: { type: 'string' }, out: { type: 'string' }, reason: { type: 'string' } }, usage);
    if (positionals.length !== 1 || !values.out || !values.reason) throw new UsageError(`expected FILE_ID, --out and --reason\nusage: ${usage}`);
    const centre = await openCentre(values.config, { log: createLogger({ level: 'warn' }) });
    try {
      const r = await exportFile(centre, positionals[0]!, values.out, values.reason);
      process.stdout.write(`wrote ${values.out} (mode 0600): ${r.name}, ${r.bytes} bytes; the export is in the audit trail\n`);
      return 0;
    } finally {
      await centre.close();
    }
  },
};
