// `serve` starts all or nothing: a listener, the ledger or the schedules failing at start stops
// what had started and ends the process with one line that says what failed and what to do.
import type { TsunagiConfig } from '../../jobs/config.ts';

/** A failure to start, already phrased for the operator: printed as one line, exit 1. */
export class StartupError extends Error {}

/** The listener settings whose port is `port`, as a config path (listeners.sftp.port). */
function listenerKeyForPort(config: TsunagiConfig, port: unknown): string | undefined {
  for (const [name, settings] of Object.entries(config.listeners as Record<string, Record<string, unknown> | undefined>)) {
    if (!settings) continue;
    for (const [k, v] of Object.entries(settings)) if (/port$/i.test(k) && v === port) return `listeners.${name}.${k}`;
  }
  return undefined;
}

/** One line for a failure while starting `what` (a listener, the ledger, the schedules). */
export function describeStartFailure(config: TsunagiConfig, what: string, err: unknown): StartupError {
  if (err instanceof StartupError) return err;
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string };
  const where = e.port !== undefined ? ` on ${e.address ?? ''}:${e.port}${listenerKeyForPort(config, e.port) ? ` (${listenerKeyForPort(config, e.port)})` : ''}` : '';
  const hint =
    e.code === 'EADDRINUSE' ? 'another process listens there: stop it or change the port in the config'
    : e.code === 'EACCES' ? 'this user may not bind that port (below 1024 needs privileges): use a higher port'
    : e.code === 'EADDRNOTAVAIL' ? 'no interface of this machine has that address: fix the host in the config'
    : e.code === 'ECONNREFUSED' ? 'nothing answers there: start it, or fix the address in the config'
    : /secret|environment variable|cannot read/i.test(e.message ?? '') ? 'fix the file or variable the config names (tsunagi check-config lists them all)'
    : 'see the message; tsunagi check-config checks the config and the files it names';
  const known: Record<string, string> = { EADDRINUSE: 'address already in use', EACCES: 'permission denied', EADDRNOTAVAIL: 'address not available', ECONNREFUSED: 'connection refused' };
  const message = (e.code && known[e.code]) ?? String(e.message ?? err).split('\n')[0]!;
  return new StartupError(`cannot start: ${what}${where}: ${message}; ${hint}`);
}

/** A URL without its password, for messages. */
export function withoutPassword(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@');
}
