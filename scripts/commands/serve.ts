import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { createListeners } from '../../jobs/listeners.ts';
import { parseCommandArgs, type Command } from '../cli-kit.ts';
import { untilSignal } from '../signals.ts';
import { startWebServices } from '../../web/start.ts';

const usage = 'tsunagi serve [--config FILE]';

export const command: Command = {
  summary: 'run the centre: protocol listeners, schedules and job workers, until SIGTERM',
  usage,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { config: { type: 'string' } }, usage);
    const centre = await openCentre(values.config);
    const engine = await startEngine(centre);
    const listeners = await createListeners(engine);
    for (const l of listeners) await l.start();
    const web = await startWebServices(engine, listeners);
    await engine.startSchedules();
    // Anything left over from before a crash or a restart.
    await engine.enqueue({ kind: 'sweep', input: {}, jobId: `sweep-start-${Date.now()}` });
    centre.log.info({ queue: engine.kind, listeners: listeners.map((l) => `${l.name}:${l.port}`), portal: web.web?.url, partners: centre.config.partners.length }, 'tsunagi serving');
    const signal = await untilSignal();
    centre.log.info({ signal }, 'shutting down: listeners first, then running jobs finish');
    await web.stop();
    for (const l of listeners) await l.stop().catch((err) => centre.log.error({ err }, 'listener stop failed'));
    await engine.stop();
    await centre.close();
    return 0;
  },
};
