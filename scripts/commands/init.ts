import { initCentre } from '../../jobs/starter.ts';
import { parseCommandArgs, UsageError, type Command } from '../cli-kit.ts';

const usage = 'tsunagi init DIR';

export const command: Command = {
  summary: 'write a working starter config and spool tree into DIR',
  usage,
  async run(argv) {
    const { positionals } = parseCommandArgs(argv, {}, usage);
    if (positionals.length !== 1) throw new UsageError(`expected DIR\nusage: ${usage}`);
    const { configFile, config, created } = await initCentre(positionals[0]!);
    process.stdout.write(
      `${created ? 'wrote' : 'kept existing'} ${configFile}\n` +
        `spool: ${config.spoolRoot} (partners/<id>/inbound, outbound; work, archive, error)\n` +
        `next: npx tsunagi check-config --config ${configFile} && npx tsunagi cycle --config ${configFile}\n`,
    );
    return 0;
  },
};
