// What a job handler gets: plain input and this context. Handlers never talk to Redis or cron:
// the runner (BullMQ or embedded) decides how `enqueue` is carried out.
import type { Centre } from './centre.ts';
import type { RouteTable } from './routing.ts';
import type { ProtocolClient } from '../protocols/contract.ts';
import type { PartnerConfig } from './config.ts';

export const JOB_KINDS = ['scan', 'ingest', 'route', 'deliver', 'deliver-scheduled', 'collect', 'sweep', 'purge', 'jmanager', 'reconcile', 'utility-validity'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

/** Kinds whose handlers are CPU-heavy (validation, conversion, aggregation): both runners run them in worker threads. */
export const CPU_HEAVY_KINDS: readonly JobKind[] = ['ingest', 'route', 'jmanager', 'reconcile'];

export interface JobRequest {
  kind: JobKind;
  input: Record<string, unknown>;
  /** Deterministic: the same work always gets the same id, so a duplicate enqueue is a no-op. */
  jobId: string;
  delayMs?: number;
}

export interface JobContext {
  centre: Centre;
  routes: RouteTable;
  enqueue(request: JobRequest): Promise<void>;
  /** A protocol client for a partner's delivery endpoint; the caller closes it. */
  clientFor(partner: PartnerConfig): Promise<ProtocolClient>;
  now(): Date;
}

export type Handler = (input: Record<string, unknown>, ctx: JobContext) => Promise<void>;

/** Job ids may not contain ':' in BullMQ; keep them to a safe alphabet. */
export function jobId(...parts: (string | number)[]): string {
  return parts.map((p) => String(p).replace(/[^A-Za-z0-9_.-]/g, '_')).join('-');
}
