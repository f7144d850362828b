import { openCentre, type Centre } from '../../jobs/centre.ts';
import { loadConfig } from '../../jobs/config.ts';
import { startEngine, type Engine } from '../../jobs/engine.ts';
import { createListeners } from '../../jobs/listeners.ts';
import { formatProblem, preflight } from '../../jobs/preflight.ts';
import { centreClock } from '../../jobs/runtime.ts';
import type { ProtocolListener } from '../../protocols/contract.ts';
import { parseCommandArgs, type Command } from '../cli-kit.ts';
import { StartupError, describeStartFailure, withoutPassword } from '../lib/startup.ts';
import { writePidFile } from '../lib/supervision.ts';
import { untilSignal } from '../signals.ts';
import { startWebServices, type WebServices } from '../../web/start.ts';

const usage = 'tsunagi serve [--config FILE] [--pid-file FILE]';

export const command: Command = {
  summary: 'run the centre: protocol listeners, schedules and job workers, until SIGTERM',
  usage,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { config: { type: 'string' }, 'pid-file': { type: 'string' } }, usage);
    const config = loadConfig(values.config);
    // Everything the centre will need from the machine, before anything starts.
    const problems = preflight(config, centreClock()()).filter((p) => p.level === 'error');
    if (problems.length) throw new StartupError(`cannot start: ${problems.map((p) => formatProblem(config.file, p)).join('; ')}`);

    let centre: Centre | undefined;
    let engine: Engine | undefined;
    const started: ProtocolListener[] = [];
    let web: WebServices | undefined;
    let removePidFile: (() => Promise<void>) | undefined;
    const stopAll = async () => {
      await web?.stop();
      for (const l of started.reverse()) await l.stop().catch((err) => centre?.log.error({ err }, 'listener stop failed'));
      await engine?.stop().catch(() => undefined);
      await centre?.close().catch(() => undefined);
      await removePidFile?.();
    };
    // All or nothing: whatever fails to start stops what had started, and the process ends.
    const step = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
      try {
        return await run();
      } catch (err) {
        await stopAll();
        throw describeStartFailure(config, what, err);
      }
    };
    centre = await step(`ledger ${withoutPassword(config.ledger)}`, () => openCentre(config));
    engine = await step('job engine', () => startEngine(centre!, { waitForQueue: 'forever', warmUp: true }));
    const listeners = await step('listeners', () => createListeners(engine!));
    for (const l of listeners) await step(`listener ${l.name}`, () => l.start().then(() => void started.push(l)));
    web = await step('web services', () => startWebServices(engine!, listeners));
    await step('schedules', () => engine!.startSchedules());
    // Anything left over from before a crash or a restart.
    await step('sweep', () => engine!.enqueue({ kind: 'sweep', input: {}, jobId: `sweep-start-${Date.now().toString(36)}` }));
    if (values['pid-file']) removePidFile = await step(`pid file ${values['pid-file']}`, () => writePidFile(values['pid-file']!));
    centre.log.info({ queue: engine.kind, listeners: listeners.map((l) => `${l.name}:${l.port}`), portal: web.web?.url, partners: centre.config.partners.length, pid: process.pid }, 'tsunagi serving');
    const signal = await untilSignal();
    centre.log.info({ signal }, 'shutting down: listeners first, then running jobs finish');
    await stopAll();
    return 0;
  },
};
