// Builds the job context both runners hand to the handlers.
import type { Centre } from './centre.ts';
import { createClient } from './clients.ts';
import type { JobContext } from './context.ts';
import { buildRouteTable } from './routing.ts';

/**
 * The centre's clock. TSUNAGI_NOW (an ISO time) pins it, to replay a cycle as of a moment or to
 * compare runs byte for byte; it is never set in production.
 */
export function centreClock(): () => Date {
  const pinned = process.env.TSUNAGI_NOW;
  if (!pinned) return () => new Date();
  const at = new Date(pinned);
  if (Number.isNaN(at.getTime())) throw new Error(`TSUNAGI_NOW '${pinned}': expected an ISO time`);
  return () => new Date(at);
}

export function makeJobContext(centre: Centre, enqueue: JobContext['enqueue'], now: () => Date = centreClock()): JobContext {
  return {
    centre,
    routes: buildRouteTable(centre.config),
    enqueue,
    clientFor: (partner) => createClient(partner, centre.log, centre),
    now,
  };
}
