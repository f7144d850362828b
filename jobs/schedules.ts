// The schedules both runners use, from the config (cron in Asia/Tokyo).
import type { TsunagiConfig } from './config.ts';
import type { JobKind } from './context.ts';

export interface Schedule {
  /** Stable id: the BullMQ job scheduler id, and the prefix of each slot's job id. */
  id: string;
  kind: JobKind;
  pattern: string;
  input: Record<string, unknown>;
}

export const TIMEZONE = 'Asia/Tokyo';

export function schedulesFor(config: TsunagiConfig): Schedule[] {
  const s = config.schedules;
  const list: Schedule[] = [
    { id: 'scan', kind: 'scan', pattern: s.ingest, input: {} },
    { id: 'cycle', kind: 'scan', pattern: s.cycle, input: { cycle: true } },
    { id: 'collect', kind: 'collect', pattern: s.collect, input: {} },
    { id: 'sweep', kind: 'sweep', pattern: s.sweep, input: {} },
    { id: 'purge', kind: 'purge', pattern: s.purge, input: {} },
    { id: 'jmanager', kind: 'jmanager', pattern: s.jmanager, input: {} },
    { id: 'reconcile', kind: 'reconcile', pattern: s.reconcile, input: {} },
  ];
  for (const p of config.partners) {
    if (p.schedule) list.push({ id: `deliver-${p.id}`, kind: 'deliver-scheduled', pattern: p.schedule, input: { partnerId: p.id } });
    if (p.utility?.validity) list.push({ id: `validity-${p.id}`, kind: 'utility-validity', pattern: p.utility.validity.schedule, input: { partnerId: p.id } });
  }
  return list;
}
