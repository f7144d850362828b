import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { runCycle, formatSummary, cycleHadRejections } from '../../jobs/cycle.ts';
import { checkBusinessDate } from '../../jobs/business-day.ts';
import { centreClock } from '../../jobs/runtime.ts';
import { createLogger } from '../../jobs/log.ts';
import { tokyoDate } from '../../spool/tree.ts';
import { EXIT_OK, EXIT_REJECTED, parseCommandArgs, printJson, UsageError, type Command } from '../cli-kit.ts';

const usage = 'tsunagi cycle [--date YYYYMMDD] [--json] [--config FILE]';

export const command: Command = {
  summary: 'run one full nightly cycle now, in the foreground, and print a summary (exit 3 if anything was rejected or failed)',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { config: { type: 'string' }, date: { type: 'string' }, json: { type: 'boolean' } }, usage);
    if (positionals.length) throw new UsageError(`unexpected ${positionals.join(' ')}\nusage: ${usage}`);
    const now = centreClock()();
    const date = values.date === undefined ? tokyoDate(now) : checkBusinessDate(values.date, now, '--date');
    const tty = process.stderr.isTTY && !values.json;
    const centre = await openCentre(values.config, { log: createLogger({ level: process.env.TSUNAGI_LOG_LEVEL ?? 'warn', destination: process.stderr }) });
    const engine = await startEngine(centre);
    try {
      const summary = await runCycle(engine, { date, onProgress: tty ? (t) => process.stderr.write(`\r\x1b[K${t}`) : undefined });
      if (tty) process.stderr.write('\r\x1b[K');
      if (values.json) printJson(summary);
      else process.stdout.write(formatSummary(summary));
      return cycleHadRejections(summary) ? EXIT_REJECTED : EXIT_OK;
    } finally {
      await engine.stop();
      await centre.close();
    }
  },
};
