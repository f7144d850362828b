import { loadConfig } from '../../jobs/config.ts';
import { hulftParameterFile } from '../../protocols/hulft/defs.ts';
import { HULFT_CENTRE_DEFAULTS } from '../../protocols/hulft/config.ts';
import { parseCommandArgs, UsageError, type Command } from '../cli-kit.ts';

const usage = 'tsunagi hulft-defs PARTNER [--config FILE]';

export const command: Command = {
  summary: 'print the HULFT definitions to register for a partner (a utliupdt parameter file)',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { config: { type: 'string' } }, usage);
    if (positionals.length !== 1) throw new UsageError(`expected one PARTNER\nusage: ${usage}`);
    const config = loadConfig(values.config);
    const partner = config.partners.find((p) => p.id === positionals[0]);
    if (!partner) throw new UsageError(`partner '${positionals[0]}' is not in ${config.file}`);
    if (!partner.hulft) throw new UsageError(`partner '${partner.id}' has no hulft section in ${config.file}`);
    process.stdout.write(hulftParameterFile(partner.id, partner.hulft, config.hulft ?? HULFT_CENTRE_DEFAULTS, config.file));
    return 0;
  },
};
