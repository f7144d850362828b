import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { parseCommandArgs, UsageError, type Command } from '../cli-kit.ts';
import { untilSignal } from '../signals.ts';
import { writePidFile } from '../lib/supervision.ts';
import { loadConfig } from '../../jobs/config.ts';
import { describeStartFailure, withoutPassword } from '../lib/startup.ts';

const usage = 'tsunagi worker [--concurrency N] [--config FILE] [--pid-file FILE]';

export const command: Command = {
  summary: 'run BullMQ job workers only (more processes and machines join the same Redis)',
  usage,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { config: { type: 'string' }, concurrency: { type: 'string' }, 'pid-file': { type: 'string' } }, usage);
    const config = loadConfig(values.config);
    const centre = await openCentre(config).catch((err) => Promise.reject(describeStartFailure(config, `ledger ${withoutPassword(config.ledger)}`, err)));
    if (centre.config.queue === 'embedded') {
      await centre.close();
      throw new UsageError(`${centre.config.file}: queue is 'embedded'; workers need queue: redis://... (use 'tsunagi serve' for one process)`);
    }
    const concurrency = values.concurrency ? Number(values.concurrency) : undefined;
    if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency > 0)) throw new UsageError('--concurrency: expected a positive integer');
    const engine = await startEngine(centre, { concurrency, lockDurationMs: envMs('TSUNAGI_LOCK_MS'), stalledIntervalMs: envMs('TSUNAGI_STALLED_MS'), waitForQueue: 'forever', warmUp: true });
    const removePidFile = values['pid-file'] ? await writePidFile(values['pid-file']) : undefined;
    centre.log.info({ pid: process.pid }, 'worker ready');
    const signal = await untilSignal();
    centre.log.info({ signal }, 'worker stopping: running jobs finish first');
    await engine.stop();
    await centre.close();
    await removePidFile?.();
    return 0;
  },
};

function envMs(name: string): number | undefined {
  const v = process.env[name];
  return v ? Number(v) : undefined;
}
