import { ConfigError, formatPath, loadConfig } from '../../jobs/config.ts';
import { as2CertificateReport } from '../../protocols/as2/index.ts';
import { hulftConfigWarnings, hulftJobLineIssues } from '../../protocols/hulft/config.ts';
import { EXIT_USAGE, parseCommandArgs, type Command } from '../cli-kit.ts';
import { formatProblem, preflight } from '../../jobs/preflight.ts';
import { centreClock } from '../../jobs/runtime.ts';
import { atRestWarnings, loadKeyRing } from '../../jobs/at-rest.ts';
import { KeyError } from '../../spool/keys.ts';

const usage = 'tsunagi check-config [--config FILE]';

export const command: Command = {
  summary: 'validate the config file and every file, secret, folder and certificate it names; print what is wrong (exit 2)',
  usage,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { config: { type: 'string' } }, usage);
    const config = loadConfig(values.config);
    const certs = as2CertificateReport(config.partners);
    for (const w of certs.warnings) process.stderr.write(`warning: ${w}\n`);
    if (certs.errors.length > 0) throw new ConfigError(config.file, certs.errors);
    // HULFT job lines carry this file's path: only here is it known.
    const jobLines = config.hulft ? hulftJobLineIssues(config.hulft, config.file) : [];
    if (jobLines.length) throw new ConfigError(config.file, jobLines.map((i) => `${formatPath(i.path)}: ${i.message}`));
    for (const w of hulftConfigWarnings(config)) process.stderr.write(`warning: ${formatPath(w.path)}: ${w.message}\n`);
    // Every file, secret and folder the config names, as serve and the jobs will need them.
    const problems = preflight(config, centreClock()());
    // Encryption at rest: the keys load (a key file others can read is refused), or a loud warning.
    try {
      loadKeyRing(config);
    } catch (err) {
      if (!(err instanceof KeyError)) throw err;
      problems.push({ level: 'error', where: config.encryption ? 'encryption.kek' : 'vault.kek', message: err.message });
    }
    for (const w of atRestWarnings(config)) process.stderr.write(`warning: ${w}\n`);
    for (const p of problems) process.stderr.write(`${formatProblem(config.file, p)}\n`);
    const errors = problems.filter((p) => p.level === 'error').length;
    if (errors) {
      process.stderr.write(`${config.file}: ${errors} problem${errors > 1 ? 's' : ''}\n`);
      return EXIT_USAGE;
    }
    const roles = new Map<string, number>();
    for (const p of config.partners) roles.set(p.role, (roles.get(p.role) ?? 0) + 1);
    process.stdout.write(
      `${config.file}: ok (centre ${config.centre.code} ${config.centre.name}; ${config.partners.length} partners: ${[...roles].map(([r, n]) => `${n} ${r}`).join(', ') || 'none'}; ledger ${config.ledger.split(':')[0]}; queue ${config.queue === 'embedded' ? 'embedded' : 'redis'})\n`,
    );
    return 0;
  },
};
