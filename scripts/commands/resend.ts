import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { createLogger } from '../../jobs/log.ts';
import { resendFile, ResendError } from '../../jobs/resend.ts';
import { EXIT_OK, EXIT_REJECTED, parseCommandArgs, UsageError, type Command } from '../cli-kit.ts';

const usage = 'tsunagi resend FILE_ID [--config FILE]';

export const command: Command = {
  summary: 'deliver an outbound file again (failed, or lost by the partner)',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { config: { type: 'string' } }, usage);
    if (positionals.length !== 1) throw new UsageError(`expected one FILE_ID\nusage: ${usage}`);
    const centre = await openCentre(values.config, { log: createLogger({ level: 'warn', destination: process.stderr }) });
    // With Redis, the running workers deliver it; embedded, this process does, now.
    const engine = await startEngine(centre, { workers: false });
    try {
      await resendFile(engine, positionals[0]!);
      await engine.drain();
      const file = await centre.files.require(positionals[0]!);
      process.stdout.write(`${file.id}: ${file.state}${file.reason ? ` (${file.reason})` : ''}\n`);
      return file.state === 'failed' ? EXIT_REJECTED : EXIT_OK;
    } catch (err) {
      if (err instanceof ResendError) throw new UsageError(err.message);
      throw err;
    } finally {
      await engine.stop();
      await centre.close();
    }
  },
};
