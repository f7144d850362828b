import { stopWhenLauncherExits } from './lib/supervision.ts';

/** Resolves with the first SIGTERM or SIGINT (or 'SIGHUP' when the npm launcher went away). */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      stopWatching();
      resolve(signal);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
    const stopWatching = stopWhenLauncherExits(() => on('SIGHUP'));
  });
}
