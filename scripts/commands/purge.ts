import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { createLogger } from '../../jobs/log.ts';
import { purgeArchive } from '../../jobs/handlers/purge.ts';
import { parseCommandArgs, printJson, type Command } from '../cli-kit.ts';

const usage = 'tsunagi purge [--json] [--config FILE]';

export const command: Command = {
  summary: 'remove archived files older than their retention (the ledger keeps their history)',
  usage,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { config: { type: 'string' }, json: { type: 'boolean' } }, usage);
    const centre = await openCentre(values.config, { log: createLogger({ level: 'warn', destination: process.stderr }) });
    const engine = await startEngine(centre, { workers: false });
    try {
      const result = await purgeArchive(engine.ctx);
      if (values.json) printJson(result);
      else process.stdout.write(`purged ${result.purged} archived files (${result.bytes} bytes), ${result.aggregates} Jmanager aggregate rows, ${result.transactions} terminal transactions, ${result.partials} abandoned 全銀 partial files, ${result.auditRows} audit rows past their retention\n`);
      return 0;
    } finally {
      await engine.stop();
      await centre.close();
    }
  },
};
